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


def _figure(ncols: int = 1, size: tuple[float, float] = (6.4, 3.6)) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(1, ncols, figsize=size, layout="constrained", squeeze=False)
    plt.close(fig)  # shown once, as the returned value, not again by the inline backend
    return fig, axes[0]


def logits_and_probabilities(
    logits: ArrayLike, class_names: Sequence[str] | None = None, target: int | None = None
) -> Figure:
    """Bars of the logits beside the softmax probabilities they become (chapter 1)."""
    z = np.asarray(logits, dtype=float)
    p = softmax(z)
    names = list(class_names) if class_names else [f"class {i}" for i in range(len(z))]
    fig, (left, right) = _figure(2, (8, 3.2))
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
