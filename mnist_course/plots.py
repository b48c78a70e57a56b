"""The course's figures: one function per picture, each returning the matplotlib figure.

The notebooks call one line per picture; Jupyter shows the returned figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from mnist_course.losses import softmax


def _figure(
    size: tuple[float, float] = (6.4, 3.6), nrows: int = 1, ncols: int = 1
) -> tuple[Figure, np.ndarray]:
    """A new figure and its axes as a flat array."""
    fig, axes = plt.subplots(nrows, ncols, figsize=size, layout="constrained", squeeze=False)
    plt.close(fig)  # shown once, as the returned value, not again by the inline backend
    return fig, axes.ravel()


def logits_and_probabilities(
    logits: ArrayLike, class_names: Sequence[str] | None = None, target: int | None = None
) -> Figure:
    """Bars of the logits beside the softmax probabilities they become (chapter 1)."""
    z = np.asarray(logits, dtype=float)
    p = softmax(z)
    names = list(class_names) if class_names else [f"class {i}" for i in range(len(z))]
    fig, (left, right) = _figure((8, 3.2), ncols=2)
    colors = ["tab:green" if i == target else "tab:blue" for i in range(len(z))]
    left.bar(names, z, color=colors)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_title("logits z (any real number)")
    right.bar(names, p, color=colors)
    right.set_ylim(0, 1)
    right.set_title("softmax(z): probabilities, sum = 1")
    for i, value in enumerate(p):
        right.text(i, value + 0.02, f"{value:.3f}", ha="center")
    return fig


def negative_log_curve(p_marked: float | None = None, label: str = "") -> Figure:
    """The curve -log(p) for p in (0, 1], with one point marked (chapter 1)."""
    p = np.linspace(0.005, 1, 400)
    fig, (ax,) = _figure()
    ax.plot(p, -np.log(p), label="loss = -log p")
    if p_marked is not None:
        ax.plot([p_marked], [-np.log(p_marked)], "o", color="tab:red")
        text = f"{label} p = {p_marked:.3f}, loss = {-np.log(p_marked):.3f}".strip()
        ax.annotate(
            text, (p_marked, -np.log(p_marked)), xytext=(10, 15), textcoords="offset points"
        )
    ax.set_xlabel("p = probability given to the true class")
    ax.set_ylabel("cross-entropy loss")
    ax.set_ylim(0, 5.5)
    ax.legend()
    return fig


def _as_images(images: ArrayLike) -> np.ndarray:
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    return arr.reshape(-1, 28, 28)


def digit_grid(
    images: ArrayLike,
    labels: Sequence[int],
    predicted: Sequence[int] | None = None,
    confidence: Sequence[float] | None = None,
    ncols: int = 8,
) -> Figure:
    """Digits with their labels; with ``predicted``, "pred (confidence) / true" in red (ch. 3-4)."""
    pics = _as_images(images)
    nrows = max(1, -(-len(pics) // ncols))
    fig, axes = _figure((1.1 * ncols, 1.25 * nrows), nrows, ncols)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= len(pics):
            continue
        ax.imshow(pics[i], cmap="gray_r")
        if predicted is None:
            ax.set_title(str(int(labels[i])), fontsize=10)
        else:
            conf = f" ({float(confidence[i]):.2f})" if confidence is not None else ""
            wrong = int(predicted[i]) != int(labels[i])
            ax.set_title(
                f"{int(predicted[i])}{conf} / {int(labels[i])}",
                fontsize=8,
                color="tab:red" if wrong else "black",
            )
    return fig


def label_histogram(labels: ArrayLike) -> Figure:
    """How many images of each digit (chapter 3)."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=10)
    fig, (ax,) = _figure()
    ax.bar(range(10), counts)
    ax.set_xticks(range(10))
    ax.set_xlabel("digit")
    ax.set_ylabel("images")
    ax.set_title(f"{counts.sum():,} labels, {counts.min():,} to {counts.max():,} per digit")
    return fig


def show_image(image: ArrayLike, title: str = "") -> Figure:
    """One image with a colour bar, to read its pixel values (chapter 3)."""
    fig, (ax,) = _figure((4.2, 3.6))
    shown = ax.imshow(_as_images(image)[0], cmap="gray_r")
    fig.colorbar(shown, ax=ax)
    ax.set_title(title)
    return fig


def training_curves(history: Sequence) -> Figure:
    """Loss and accuracy per epoch, training and validation, from a
    :func:`~mnist_course.training.fit` history or any sequence of objects with the
    same fields (chapter 6)."""
    epochs = [h.epoch for h in history]
    fig, (left, right) = _figure((9, 3.4), ncols=2)
    left.plot(epochs, [h.train_loss for h in history], "o-", label="train")
    left.plot(epochs, [h.val_loss for h in history], "o-", label="validation")
    left.set_title("cross-entropy loss")
    right.plot(epochs, [100 * h.train_acc for h in history], "o-", label="train")
    right.plot(epochs, [100 * h.val_acc for h in history], "o-", label="validation")
    right.set_title("accuracy (%)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs)
        ax.legend()
    return fig


def confusion(matrix: ArrayLike) -> Figure:
    """The confusion matrix with its counts; the diagonal is what is right (chapter 4)."""
    m = np.asarray(matrix)
    off = m.copy()
    np.fill_diagonal(off, 0)
    fig, (ax,) = _figure((5.0, 4.4))
    ax.imshow(off, cmap="Reds")
    for (i, j), count in np.ndenumerate(m):
        dark = i != j and off.max() > 0 and count > 0.6 * off.max()
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if dark else "black",
        )
    ax.set_xticks(range(len(m)))
    ax.set_yticks(range(len(m)))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (colour: the errors)")
    return fig


def comparison_bars(
    names: Sequence[str], values: Sequence[float], xlabel: str, title: str, fmt: str = "{:.1f}"
) -> Figure:
    """One horizontal bar per variant, the first on top, its value written at its end
    (chapter 6's optimiser ladder). Horizontal, so that long names stay readable."""
    fig, (ax,) = _figure((6.4, 1.0 + 0.35 * len(names)))
    bars = ax.barh(list(names), list(values), color="tab:blue")
    ax.invert_yaxis()  # the first variant on top
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            " " + fmt.format(value),
            ha="left",
            va="center",
        )
    ax.set_xlim(0, 1.15 * max(values))  # room for the values at the bars' ends
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _numbers(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:+.3f}" for x in values) + "]"


def allreduce_diagram(grads: Sequence[ArrayLike], share: int) -> Figure:
    """Data parallelism in one picture: each process's shard gradient, all-reduced (chapter 7).

    ``grads[r]`` is a few numbers of process r's gradient (its shard of ``share``
    images); the all-reduce box shows their mean, which every process then uses.
    """
    rows = [np.asarray(g, dtype=float).ravel() for g in grads]
    mean = np.mean(rows, axis=0)
    fig, (ax,) = _figure((9, 1.2 + 1.1 * len(rows)))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")

    def box(x: float, y: float, text: str, color: str, height: float = 0.6) -> None:
        ax.add_patch(
            plt.Rectangle((x - 1.05, y - height / 2), 2.1, height, facecolor=color, alpha=0.25)
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})

    middle = (len(rows) - 1) / 2
    for r, g in enumerate(rows):
        y = len(rows) - 1 - r
        box(1.1, y, f"process {r}\n{share} images", "tab:blue")
        box(3.8, y, f"its gradient g{r}\n{_numbers(g)}", "tab:orange")
        box(8.9, y, "same step\nw -= lr * mean", "tab:green")
        arrow(2.15, y, 2.75, y)
        arrow(4.85, y, 5.55, middle)
        arrow(7.25, middle, 7.85, y)
    ax.add_patch(plt.Rectangle((5.55, middle - 0.45), 1.7, 0.9, facecolor="tab:purple", alpha=0.25))
    ax.text(
        6.4, middle, f"all-reduce\nmean\n{_numbers(mean)}", ha="center", va="center", fontsize=8
    )
    ax.set_title("one training step on several processes (DistributedDataParallel)")
    return fig
