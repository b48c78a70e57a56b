"""The course in a real browser: JupyterLab in headless Chromium opens each chapter and runs it.

Skips with a reason where Chromium or Playwright is missing; `.ci/run` installs both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jupyter_server import make_lab

ROOT = Path(__file__).resolve().parents[1]
# chapter -> (title that must be visible, text the second code cell prints)
CHAPTERS = {
    "00_setup.ipynb": ("00 · Is your computer ready?", "Python, packages and device: ready"),
    "01_cross_entropy_numpy.ipynb": ("01 · Cross-entropy in NumPy", "0.9729189131256584"),
    "02_cross_entropy_pytorch.ipynb": ("02 · Cross-entropy in PyTorch", "tensor(0.9729)"),
    "03_mnist_data.ipynb": ("03 · The MNIST data", "60,000 training images, 10,000 test images"),
    "04_mnist_mlp.ipynb": ("04 · Training the lecture's network", "469 training batches"),
    "05_going_further.ipynb": ("05 · Going further", "parameters: MLP 575,050, CNN 18,474"),
}
# Console noise that is not the course's: jupyterlab-rise's bundle logs this at start-up.
KNOWN_NOISE = ("Maximum call stack size exceeded",)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    workdir = tmp_path_factory.mktemp("lab")
    served = workdir / "notebooks"  # a copy: running cells must never touch the committed files
    shutil.copytree(
        ROOT / "notebooks", served, ignore=shutil.ignore_patterns("*.pt", ".ipynb_checkpoints")
    )
    # expose_app_in_browser: lets the test call JupyterLab commands (clear the stored outputs)
    with make_lab(workdir, served, "--LabApp.expose_app_in_browser=True") as running:
        yield running


def test_every_chapter_is_covered():
    assert sorted(CHAPTERS) == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_chapter_opens_and_runs_in_jupyterlab(name, lab, browser):
    title, expected = CHAPTERS[name]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{lab.base}/lab/tree/{name}?reset&token={lab.token}")
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        notebook.wait_for(timeout=60_000)
        assert notebook.locator("h1").first.inner_text().startswith(title)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000
        )
        assert page.locator(".jp-Dialog").count() == 0, "an error or kernel dialog is open"
        # clear the stored outputs, so that what is checked below was computed now
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        page.wait_for_function("document.querySelectorAll('.jp-OutputArea-output').length === 0")

        cells = notebook.locator(".jp-CodeCell")
        run_button = page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) "
            "[data-command='notebook:run-cell-and-select-next']"
        )
        for i in range(2):  # run the first two code cells, one by one, as a learner would:
            cells.nth(i).locator(".jp-InputPrompt").click()  # select the cell,
            page.wait_for_function(  # (wait until JupyterLab made it the active cell)
                "i => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
                ".jp-CodeCell')[i].classList.contains('jp-mod-active')",
                arg=i,
            )
            run_button.click()  # then press the toolbar's Run button
            cells.nth(i).locator(".jp-InputPrompt", has_text=f"[{i + 1}]").wait_for(timeout=120_000)
        second = cells.nth(1)
        output = second.locator(".jp-OutputArea-output").first
        output.wait_for(timeout=60_000)
        assert expected in output.inner_text()
        assert (
            notebook.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            ).count()
            == 0
        )
        assert page.locator(".jp-Dialog").count() == 0
    except Exception:
        page.screenshot(path=str(lab.log.parent / f"{name}.png"))  # look here when it fails
        raise
    finally:
        page.close()
    course_errors = [e for e in errors if not any(noise in e for noise in KNOWN_NOISE)]
    assert not course_errors, f"console errors in {name}: {course_errors}"
