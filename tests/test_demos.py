"""The live demos' logic (mnist_course.demos), without a browser; and their cells in a plain kernel.

The widgets themselves are driven in real Chromium by tests/test_demos_browser.py.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient
from PIL import Image
from torch import nn

from mnist_course import data, demos, losses, models

Z, LABEL = [0.2, 0.1, -0.1], 0  # the lecture notes' example (chapter 1)
NOTES_LOSS = 0.9729189131256584


def png_size(png: bytes) -> tuple[int, int]:
    png = bytes(png)  # an ipywidgets.Image holds a memoryview
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png)).size


# --- softmax temperature ------------------------------------------------------------------


def test_temperature_one_is_the_plain_softmax_and_the_notes_loss():
    view = demos.temperature_view(Z, LABEL, 1.0)
    assert np.allclose(view.probabilities, losses.softmax(Z), atol=1e-15)
    assert abs(view.loss - NOTES_LOSS) < 1e-12
    assert view.text == (
        "T = 1.00 · probabilities [0.378, 0.342, 0.280] · loss = -log p[0] = 0.973"
    )


@pytest.mark.parametrize("t", [0.1, 0.37, 1.0, 2.5, 10.0])
def test_temperature_view_matches_torch(t):
    view = demos.temperature_view(Z, LABEL, t)
    z = torch.tensor(Z, dtype=torch.float64) / t
    assert np.allclose(view.probabilities, torch.softmax(z, 0).numpy(), atol=1e-15)
    expected = torch.nn.functional.cross_entropy(z[None], torch.tensor([LABEL])).item()
    assert abs(view.loss - expected) < 1e-12
    assert abs(view.probabilities.sum() - 1) < 1e-12


def test_low_temperature_sharpens_and_high_temperature_flattens():
    z = [2.0, 1.0, 0.1, -1.0]
    cold, warm, hot = (demos.temperature_view(z, 0, t) for t in (0.1, 1.0, 10.0))
    assert cold.probabilities[0] > 0.9999 and cold.loss < 1e-4  # almost one-hot on the arg-max
    assert cold.probabilities[0] > warm.probabilities[0] > hot.probabilities[0]
    assert np.ptp(hot.probabilities) < 0.1  # nearly uniform,
    assert warm.loss < hot.loss < np.log(4)  # so the loss tends to log C
    assert abs(demos.temperature_view(z, 0, 1000).loss - np.log(4)) < 0.01
    # a wrong label: confidence in another class makes the loss explode as T -> 0
    assert demos.temperature_view(z, 3, 0.1).loss > 25


@pytest.mark.parametrize("t", [0, -1, float("nan"), float("inf")])
def test_temperature_must_be_positive(t):
    with pytest.raises(ValueError, match="positive"):
        demos.temperature_view(Z, LABEL, t)


@pytest.mark.parametrize(
    ("logits", "label", "error"),
    [
        ([1.0], 0, ValueError),
        ([[1.0, 2.0]], 0, ValueError),
        (Z, 3, ValueError),
        (Z, 1.0, TypeError),
    ],
)
def test_temperature_bad_arguments(logits, label, error):
    with pytest.raises(error):
        demos.temperature_view(logits, label, 1.0)


def test_temperature_png_is_a_picture_and_leaves_no_figure_open():
    before = plt.get_fignums()
    png = demos.temperature_png(Z, LABEL, 0.5)
    assert png_size(png) == (600, 300)
    assert png != demos.temperature_png(Z, LABEL, 2.0)
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        demos.temperature_png(Z, LABEL, 1.0, ["a", "b"])


def test_temperature_widget_follows_its_slider():
    demo = demos.temperature_demo(Z, LABEL)
    assert repr(demo) == "TemperatureDemo(3 classes, true class 0)" + demos.WHERE
    assert demo._repr_mimebundle_()["text/plain"] == repr(demo)
    assert demo.slider.value == 1.0
    assert (demo.slider.min, demo.slider.max) == (-1.0, 1.0)  # log10 of 0.1 and 10
    assert demo.text.value == demos.temperature_view(Z, LABEL, 1.0).text
    first = demo.image.value
    demo.slider.value = 10**0.5  # what moving the slider does
    assert demo.text.value == demos.temperature_view(Z, LABEL, 10**0.5).text
    assert demo.text.value.startswith("T = 3.16 ")
    assert demo.image.value != first and png_size(demo.image.value) == (600, 300)


# --- draw a digit: strokes -> the 28 x 28 image -----------------------------------------------


def blob(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    ys, xs = np.indices((size, size))
    return ((ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2).astype(float)


def test_render_strokes_draws_round_capped_lines():
    ink = demos.render_strokes([[(140, 40), (140, 240)]], width=20)
    assert ink.shape == (280, 280) and ink.dtype == np.float32
    assert ink.min() == 0 and ink.max() == 1
    rows, cols = np.nonzero(ink)
    assert 28 <= rows.min() <= 31 and 249 <= rows.max() <= 251  # caps: 10 px beyond the ends
    assert 129 <= cols.min() <= 131 and 149 <= cols.max() <= 151
    assert demos.render_strokes([]).max() == 0
    dot = demos.render_strokes([[(100, 100)]], width=20)  # a click without a move: a dot
    assert 250 < dot.sum() < 380  # about pi * 10^2


def test_to_mnist_output_range_shape_and_box():
    out = demos.to_mnist(blob(280, 100, 180, 60))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() == pytest.approx(1.0)
    rows, cols = np.nonzero(out)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20  # the longer side fills the 20 x 20 box
    assert set(np.unique(out)) - {0.0, 1.0}  # anti-aliased: grey levels on the edge


def test_a_centred_blob_stays_centred():
    out = demos.to_mnist(blob(280, 140, 140, 50))
    cy, cx = demos.centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert np.allclose(out, out.T, atol=1e-6)  # symmetric in, symmetric out


def test_an_off_centre_stroke_is_centred_by_its_centre_of_mass():
    ink = demos.render_strokes([[(30, 20), (60, 100)]])  # top-left corner, short, slanted
    cy, cx = demos.centre_of_mass(demos.to_mnist(ink))
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    # an L: the centre of mass lies off the bounding box's centre, and it is what gets centred
    ell = demos.render_strokes([[(60, 40), (60, 240), (200, 240)]])
    out = demos.to_mnist(ell)
    cy, cx = demos.centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    rows, cols = np.nonzero(out)
    box_cy, box_cx = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    assert box_cy < 13 and box_cx > 15  # the box sits up and right of the centre


def test_to_mnist_keeps_a_lopsided_digit_inside_the_field():
    ink = np.zeros((280, 280))
    ink[20:260, 100:104] = 1  # a long bar ...
    ink[250:260, 100:260] = 1  # ... and a thin foot to the right
    out = demos.to_mnist(ink)
    assert abs(out.sum() - demos.to_mnist(ink[::-1]).sum()) < 1e-4  # nothing cut off
    assert out[:, 0].max() == 0 or out[:, -1].max() == 0


def test_to_mnist_remakes_real_mnist_digits():
    """MNIST's own digits, enlarged 10x, come back nearly unchanged: the same recipe."""
    try:
        images, _ = data.load_tensors(train=False, download=False)
    except Exception as err:  # no MNIST here: the other tests still run
        pytest.skip(f"MNIST is not available: {type(err).__name__}")
    raw = (images[:200, 0] * data.MNIST_STD + data.MNIST_MEAN).clamp(0, 1).numpy()
    errors, shifts = [], []
    for image in raw:
        image = image * (image > 1e-3)  # the normalisation's float rounding
        out = demos.to_mnist(np.kron(image, np.ones((10, 10))))
        errors.append(np.abs(out - image / image.max()).mean())
        shifts.append(np.subtract(demos.centre_of_mass(out), demos.centre_of_mass(image)))
    assert np.median(errors) < 0.03 and max(errors) < 0.12
    assert np.abs(shifts).max() <= 1.0


@pytest.mark.parametrize("empty", [np.zeros((280, 280)), np.full((50, 70), -3.0)])
def test_an_empty_canvas_gives_zeros(empty):
    out = demos.to_mnist(empty)
    assert out.shape == (28, 28) and not out.any()


def test_to_mnist_takes_any_scale_and_a_single_pixel():
    ink = blob(280, 120, 150, 40)
    assert np.allclose(demos.to_mnist(255 * ink), demos.to_mnist(ink), atol=1e-6)
    dot = np.zeros((280, 280))
    dot[5, 270] = 1
    out = demos.to_mnist(dot)
    # one pixel becomes a 20 x 20 square: centre of mass 9.5, so 14 +- 0.5 after a whole shift
    assert out.max() == pytest.approx(1.0) and out.sum() == pytest.approx(400)
    assert all(abs(c - 14) == 0.5 for c in demos.centre_of_mass(out))
    with pytest.raises(ValueError, match="2-D"):
        demos.to_mnist(np.zeros((28, 28, 4)))


def test_model_input_is_normalised_as_in_chapter_3():
    image = np.zeros((28, 28), dtype=np.float32)
    image[10, 12] = 1.0
    x = demos.model_input(image)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    uint8 = torch.from_numpy((image * 255).astype(np.uint8))[None]
    assert torch.allclose(x, data.normalize(uint8), atol=1e-6)
    with pytest.raises(ValueError, match="28 x 28"):
        demos.model_input(np.zeros((20, 20)))


class Fixed(nn.Module):
    """Logits that depend only on the total ink: enough to see the wiring."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ink = (x * data.MNIST_STD + data.MNIST_MEAN).flatten(1).sum(1, keepdim=True)
        return self.scale * torch.arange(10.0) * (ink > 5) - torch.arange(10.0) * (ink <= 5)


def test_digit_probabilities_uses_the_model_in_eval_mode():
    model = models.MLP().train()
    image = demos.to_mnist(demos.render_strokes([[(140, 40), (140, 240)]]))
    p = demos.digit_probabilities(model, image)
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-9
    assert model.training  # put back as it was
    model.eval()
    expected = torch.softmax(model(demos.model_input(image)).double(), 1)[0].detach().numpy()
    assert np.allclose(p, expected, atol=1e-6)
    assert demos.digit_probabilities(Fixed(), image).argmax() == 9
    assert demos.digit_probabilities(Fixed(), np.zeros((28, 28))).argmax() == 0


def test_prediction_text_and_pictures():
    assert demos.prediction_text(None) == demos.EMPTY_TEXT
    p = np.full(10, 0.02)
    p[7] = 0.82
    assert demos.prediction_text(p) == "The network says: 7 (probability 0.82)"
    image = demos.to_mnist(blob(280, 140, 140, 50))
    png = demos.network_view_png(image)
    assert png_size(png) == (280, 280)
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert pixels[140, 140] == 0 and pixels[0, 0] == 255  # dark ink, as plots.show_image
    before = plt.get_fignums()
    assert png_size(demos.probabilities_png(p)) == (360, 280)
    assert png_size(demos.probabilities_png(None)) == (360, 280)
    assert plt.get_fignums() == before


def test_draw_digit_widget_strokes_and_clear():
    demo = demos.draw_digit_demo(Fixed())
    assert repr(demo) == "DrawDigitDemo(Fixed)" + demos.WHERE
    assert demo._repr_mimebundle_()["text/plain"] == repr(demo)
    assert demo.text.value == demos.EMPTY_TEXT
    assert demo.canvas.layout.width == "280px" and demo.canvas.layout.height == "280px"
    empty_view = demo.seen.value
    # what the canvas' mouse callbacks receive for one vertical stroke
    demo._move(140, 10)  # a move without the button down draws nothing
    demo._down(140, 40)
    for y in range(50, 250, 10):
        demo._move(140, y)
    assert demo.text.value == demos.EMPTY_TEXT  # predicted after the stroke, not during it
    demo._up(140, 240)
    assert len(demo.strokes) == 1 and len(demo.strokes[0]) == 21
    # softmax(0, 1, ..., 9)[9] = (1 - e^-1) / (1 - e^-10) = 0.632
    assert demo.text.value == "The network says: 9 (probability 0.63)"
    assert demo.seen.value != empty_view
    demo.clear_button.click()
    assert demo.strokes == [] and demo.text.value == demos.EMPTY_TEXT
    assert demo.seen.value == empty_view


# --- the demo cells in a plain kernel (no frontend), as `make notebooks` and nbval run them ----

# The cells the chapters insert (chapter 1 after the softmax figures, where `z` holds the notes'
# logits; chapter 5 after saving its trained `model`). tests/test_demos_browser.py runs them too.
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CH1_DEMO = "from mnist_course import demos\n\ndemos.temperature_demo(z, label=0)"
CH1_CHECK = "for T in (0.1, 1, 10):\n    print(demos.temperature_view(z, 0, T).text)"
CH5_DEMO = "from mnist_course import demos\n\ndemos.draw_digit_demo(model)"
CH5_CHECK = """\
stroke = [(140, 40), (140, 240)]  # a vertical line on the 280 x 280 canvas
image = demos.to_mnist(demos.render_strokes([stroke]))
cy, cx = demos.centre_of_mass(image)
print(f"centre of mass: row {cy:.1f}, column {cx:.1f}")
p = demos.digit_probabilities(model, image)
print("the network reads it as", p.argmax())"""
CH5_SHOW = 'plots.show_image(image, "what the network sees")'
CH1_OUTPUT = """\
T = 0.10 · probabilities [0.705, 0.259, 0.035] · loss = -log p[0] = 0.349
T = 1.00 · probabilities [0.378, 0.342, 0.280] · loss = -log p[0] = 0.973
T = 10.00 · probabilities [0.338, 0.334, 0.328] · loss = -log p[0] = 1.085
"""


def test_chapter_cells_fit_the_projector():
    for cell in (CH1_DEMO, CH1_CHECK, CH5_DEMO, CH5_CHECK, CH5_SHOW):
        assert max(len(line) for line in cell.splitlines()) <= 80


def test_demo_cells_run_in_a_plain_kernel_with_stable_outputs(tmp_path):
    setup = (
        "import numpy as np\nimport torch\nfrom mnist_course import models, plots\n"
        "z = np.array([0.2, 0.1, -0.1])\ntorch.manual_seed(0)\nmodel = models.MLP()"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (setup, CH1_DEMO, CH1_CHECK, CH5_DEMO, CH5_CHECK, CH5_SHOW)
    ]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    setup_out, ch1_demo, ch1_check, ch5_demo, ch5_check, ch5_show = (
        cell.outputs for cell in nb.cells
    )
    assert setup_out == []
    for outputs, text in [
        (ch1_demo, "TemperatureDemo(3 classes, true class 0)"),
        (ch5_demo, "DrawDigitDemo(MLP)"),
    ]:
        assert [o.output_type for o in outputs] == ["execute_result"]
        bundle = outputs[0].data
        assert set(bundle) == {"text/plain", "application/vnd.jupyter.widget-view+json"}
        assert bundle["text/plain"] == text + demos.WHERE  # under 110 characters: not cut
    assert [o.get("text") for o in ch1_check] == [CH1_OUTPUT]
    assert ch5_check[0].text.startswith("centre of mass: row 14.5, column 13.5\n")
    assert re.fullmatch(r"the network reads it as \d\n", ch5_check[0].text.splitlines(True)[1])
    assert [o.output_type for o in ch5_check] == ["stream"]
    assert [o.output_type for o in ch5_show] == ["execute_result"]
    assert set(ch5_show[0].data) == {"image/png", "text/plain"}  # the figure, shown once
    stored = json.dumps([cell.outputs for cell in nb.cells])
    assert not re.search(r"0x[0-9a-f]{6,}", stored)
    assert str(tmp_path) not in stored and "/work/" not in stored


def test_the_chapters_hold_these_cells():
    def sources(name):
        return [c.source for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells]

    assert {CH1_DEMO, CH1_CHECK} <= set(sources("01_cross_entropy_numpy.ipynb"))
    assert {CH5_DEMO, CH5_CHECK, CH5_SHOW} <= set(sources("05_mnist_mlp.ipynb"))


class NoFloat64(torch.Tensor):
    """Logits as an Apple GPU (MPS) holds them: no float64 there, only after `.cpu()`."""

    def double(self):
        raise TypeError("Cannot convert a MPS Tensor to float64 dtype")

    def to(self, *args, **kwargs):
        if torch.float64 in args or kwargs.get("dtype") is torch.float64:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype")
        return super().to(*args, **kwargs)

    def cpu(self):
        return self.as_subclass(torch.Tensor)


def test_the_digit_demo_never_asks_a_gpu_for_float64():
    class OnMPS(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(784, 10)

        def forward(self, x):
            return self.layer(x.flatten(1)).detach().as_subclass(NoFloat64)

    probabilities = demos.digit_probabilities(OnMPS(), np.zeros((28, 28)))
    assert probabilities.dtype == np.float64 and abs(probabilities.sum() - 1) < 1e-12
