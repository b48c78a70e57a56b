"""The command line ``mnist-course`` (or ``python -m mnist_course``).

Examples::

    mnist-course check
    mnist-course train --model mlp --epochs 3
    mnist-course train --model cnn --epochs 3 --save cnn.pt --data-root /data
    mnist-course train --model cnn --epochs 1 --nproc 2
    mnist-course student notebooks/*.ipynb --out build/student
    mnist-course slides notebooks/*.ipynb --out build/slides
    mnist-course grade submissions/ --json grades.json
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

# Only light modules here: torch, torchvision and the notebook tools are imported by the
# command that needs them, so `--help` and a mistyped option answer at once.
from mnist_course import data

# The names of models.MODELS (tests/test_cli.py checks they agree), without importing torch.
MODEL_NAMES = ("cnn", "mlp")
DEFAULT_LR = {"mlp": 0.1, "cnn": 0.1}
# The teacher's tools need the notebook packages of the "lab" extra.
LAB_EXTRA = 'pip install "mnist-course[lab]"'


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _port(text: str) -> int:
    value = _whole_number(text)
    if not 1024 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 1024..65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mnist-course``."""
    parser = argparse.ArgumentParser(
        prog="mnist-course",
        description=(
            "Check the course environment, train an MNIST model, or (teachers) "
            "make learner copies and slide decks and grade learner notebooks."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    data_help = (
        f"folder holding MNIST/raw/ (default: ${data.ENV_VAR}, else {data.default_data_root()})"
    )

    check = commands.add_parser("check", help="check Python, packages, device and data (chapter 0)")
    check.add_argument("--data-root", help=data_help)

    train = commands.add_parser("train", help="train a model and print test accuracy per epoch")
    train.add_argument("--model", choices=MODEL_NAMES, default="mlp")
    train.add_argument("--epochs", type=_positive_int, default=3)
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--lr", type=_positive_float, help="peak learning rate (default 0.1)")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    train.add_argument("--data-root", help=data_help)
    train.add_argument("--save", type=Path, help="write the trained weights to this file")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--nproc",
        type=_positive_int,
        help="train on this many processes with DistributedDataParallel (started with torchrun; "
        "--batch-size stays the global batch)",
    )
    train.add_argument(
        "--port", type=_port, help="with --nproc: the rendezvous port (default: a free one)"
    )

    learner = commands.add_parser("student", help="write learner copies: answers replaced by stubs")
    learner.add_argument("notebooks", nargs="+", type=Path, help="chapter notebooks (.ipynb)")
    learner.add_argument("--out", type=Path, default=Path("build/student"), help="output folder")

    deck = commands.add_parser("slides", help="build offline reveal.js decks of the chapters")
    deck.add_argument("notebooks", nargs="+", type=Path, help="chapter notebooks (.ipynb)")
    deck.add_argument("--out", type=Path, default=Path("build/slides"), help="output folder")

    grade = commands.add_parser("grade", help="run learner notebooks and report each exercise")
    grade.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders holding some")
    grade.add_argument("--json", type=Path, dest="json_out", help="write every detail here")
    grade.add_argument(
        "--csv", type=Path, dest="csv_out", help="write the gradebook here (a row per learner)"
    )
    grade.add_argument(
        "--feedback", type=Path, dest="feedback_dir", help="write LEARNER.md feedback files here"
    )
    grade.add_argument(
        "--timeout", type=_positive_float, default=300.0, help="seconds per notebook (300)"
    )
    grade.add_argument("--jobs", type=_positive_int, default=1, help="notebooks graded at once (1)")
    grade.add_argument(
        "--memory", type=_positive_float, default=4.0, dest="memory_gb",
        help="memory per notebook's kernel, in GiB (4)",
    )  # fmt: skip
    grade.add_argument(
        "--user",
        help="run the learners' code as this OS account (needed when grading as root)",
    )

    translate = commands.add_parser(
        "translate", help="keep translated chapters (notebooks/zh/) in step with the English ones"
    )
    translate.add_argument(
        "action", choices=["status", "sync", "export", "import"],
        help="status: what is current, stale or missing (exit 1 unless all current); sync: "
        "rebuild the translated chapters from the English ones, keeping their translations; "
        "export: the English text of what needs translating, to --file; import: --file back",
    )  # fmt: skip
    translate.add_argument("notebooks", nargs="+", type=Path, help="English chapters (.ipynb)")
    translate.add_argument("--language", choices=["zh"], default="zh", help="(zh)")
    translate.add_argument(
        "--file", type=Path, help="export/import: the Markdown file (one chapter)"
    )
    translate.add_argument("--all", action="store_true", help="export: every cell, not only stale")
    return parser


class MissingExtraError(RuntimeError):
    """A command needs a package of an extra that is not installed."""


def _tool(name: str, command: str) -> ModuleType:
    """Import ``mnist_course.<name>``; a missing third-party package names the extra to install."""
    try:
        return importlib.import_module(f"mnist_course.{name}")
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] == "mnist_course":
            raise
        raise MissingExtraError(
            f"'mnist-course {command}' needs the package {err.name!r}, which is not installed. "
            f"Install the course's JupyterLab tools with: {LAB_EXTRA}"
        ) from err


def _notebook_paths(paths: list[Path]) -> list[Path]:
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"{path} is not a notebook file (.ipynb)")
    return paths


def run_check(args: argparse.Namespace) -> int:
    """Print the environment report; exit code 1 when something must be fixed."""
    from mnist_course import env

    checks = env.check_environment(args.data_root)
    print(env.format_report(checks))
    return 0 if all(c.ok for c in checks) else 1


def run_train(args: argparse.Namespace) -> int:
    """Train with the course recipe (one-cycle SGD, chapter 5) on the in-memory fast path.

    With ``--nproc N`` it starts N copies of itself with torchrun
    (:func:`distributed.launch`); a copy started by torchrun trains its share
    with DistributedDataParallel (chapter 7).
    """
    if args.save is not None and not args.save.parent.is_dir():
        raise ValueError(f"--save {args.save}: the folder {args.save.parent} does not exist")
    from mnist_course import distributed

    if distributed.under_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if args.nproc not in (None, world):
            raise ValueError(f"--nproc {args.nproc}, but torchrun started {world} processes")
    elif args.nproc is not None and args.nproc > 1:
        distributed.check_nproc(args.nproc, args.device)
        if args.batch_size % args.nproc:
            raise ValueError(
                f"--batch-size {args.batch_size} does not split evenly over {args.nproc} "
                f"processes: use a multiple of {args.nproc}"
            )
        return distributed.launch(args.nproc, args.argv, args.port)
    try:
        return _train(args)
    finally:
        distributed.cleanup()


def _train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from mnist_course import distributed, models, runtime, training

    device = runtime.get_device(args.device)
    group = distributed.setup(device) if distributed.under_torchrun() else None
    rank, world = (group.rank, group.world_size) if group else (0, 1)
    device = group.device if group else device
    runtime.set_seed(args.seed)
    if rank > 0:  # rank 0 fetches and checks the data first; the others then read it
        dist.barrier()
    train_x, train_y = data.load_tensors(True, args.data_root)
    test_x, test_y = data.load_tensors(False, args.data_root)
    if group and rank == 0:
        dist.barrier()
    train_loader = data.TensorLoader(
        train_x, train_y, args.batch_size, shuffle=True, seed=args.seed, rank=rank, world_size=world
    )
    test_loader = data.TensorLoader(test_x, test_y, 1000)
    model = models.build_model(args.model).to(device)
    lr = args.lr or DEFAULT_LR[args.model]
    optimizer, scheduler = training.one_cycle_sgd(model, lr, args.epochs, len(train_loader))
    where = f"{device}" if group is None else f"{world} processes ({group.backend})"
    if rank == 0:
        print(f"training {args.model} ({models.count_parameters(model):,} parameters) on {where}")
    if group is not None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)

    # Like pytorch/examples, the command measures the test set after each epoch: it trains on
    # all 60,000 images and chooses nothing (the chapters choose on a validation split).
    def report(stats: training.EpochStats) -> None:
        print(
            f"epoch {stats.epoch}: test loss {stats.val_loss:.4f}, "
            f"test accuracy {100 * stats.val_acc:.2f}%, {stats.seconds:.1f} s",
            flush=True,
        )

    training.fit(
        model, train_loader, test_loader, optimizer, args.epochs, scheduler, device,
        progress=not args.no_progress, callback=report,
    )  # fmt: skip
    if args.save is not None and rank == 0:
        plain = model.module if group is not None else model
        training.save_checkpoint(plain.cpu(), args.save, model_name=args.model, epochs=args.epochs)
        print(f"saved weights to {args.save}")
    return 0


def run_student(args: argparse.Namespace) -> int:
    """Write the learner copies and say where they are."""
    student = _tool("student", "student")
    written = student.write_learner_copies(_notebook_paths(args.notebooks), args.out)
    print(f"wrote {len(written)} learner notebooks to {args.out}")
    return 0


def run_slides(args: argparse.Namespace) -> int:
    """Build the offline decks and say where they are."""
    slides = _tool("slides", "slides")
    written = slides.build_decks(_notebook_paths(args.notebooks), args.out)
    print(f"wrote {len(written)} slide decks to {args.out}; open one in a browser (works offline)")
    return 0


def run_grade(args: argparse.Namespace) -> int:
    """Grade learner notebooks (the report and exit code come from :mod:`mnist_course.grade`)."""
    grade = _tool("grade", "grade")
    return grade.main(
        args.paths, json_out=args.json_out, timeout=args.timeout, csv_out=args.csv_out,
        feedback_dir=args.feedback_dir, jobs=args.jobs, memory_gb=args.memory_gb, user=args.user,
    )  # fmt: skip


def run_translate(args: argparse.Namespace) -> int:
    """Report, sync, export or import the translated chapters of the English ``notebooks``."""
    translation = _tool("translation", "translate")
    chapters = _notebook_paths(args.notebooks)
    if args.action in ("export", "import"):
        if len(chapters) != 1 or args.file is None:
            raise ValueError(f"translate {args.action} takes one chapter and --file FILE.md")
        english, translated = chapters[0], translation.translated_path(chapters[0], args.language)
        if args.action == "export":
            args.file.write_text(
                translation.export(english, translated, args.all), encoding="utf-8"
            )
            print(f"wrote the text to translate to {args.file}")
            return 0
        report = translation.import_text(args.file.read_text(encoding="utf-8"), english, translated)
        print(report)
        return 0
    ok = True
    for english in chapters:
        translated = translation.translated_path(english, args.language)
        if args.action == "sync":
            report = translation.sync(english, translated)
        else:
            report = translation.status(english, translated)
        print(report)
        ok = ok and report.ok
    return 0 if ok or args.action == "sync" else 1


COMMANDS = {
    "check": run_check,
    "train": run_train,
    "student": run_student,
    "slides": run_slides,
    "grade": run_grade,
    "translate": run_translate,
}


def _lost_a_peer(err: Exception) -> bool:
    """Whether ``err`` is torch.distributed's (a peer process died or went silent)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and isinstance(err, getattr(distributed, "DistError", ())):
        return True
    return any(words in str(err) for words in ("closed by peer", "reset by peer"))  # (gloo's)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script ``mnist-course``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # (train --nproc starts copies of the same command)
    try:
        return COMMANDS[args.command](args)
    # Missing or corrupt data, a bad device or path, a diverged run: a message, not a traceback.
    # (MNISTCorruptError is a ValueError; MissingExtraError a RuntimeError.)
    except (data.MNISTNotFoundError, NotADirectoryError, ValueError, RuntimeError) as err:
        who = ""
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # one of torchrun's processes
            who = f" (process {os.environ['RANK']} of {os.environ['WORLD_SIZE']})"
            if _lost_a_peer(err):
                err = f"lost contact with another process, which probably failed first: {err}"
        print(f"mnist-course: error{who}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
