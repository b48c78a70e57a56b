"""Each figure function returns a figure with the expected axes and content."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mnist_course import plots  # noqa: E402
from mnist_course.training import EpochStats  # noqa: E402


def test_logits_and_probabilities():
    fig = plots.logits_and_probabilities([0.2, 0.1, -0.1], ["a", "b", "c"], target=0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    heights = [bar.get_height() for bar in fig.axes[1].patches]
    assert abs(sum(heights) - 1) < 1e-9 and heights[0] > heights[1] > heights[2]


def test_negative_log_curve_marks_the_point():
    fig = plots.negative_log_curve(0.378, label="notes:")
    (ax,) = fig.axes
    marked = ax.lines[1].get_xydata()[0]
    assert abs(marked[0] - 0.378) < 1e-12 and abs(marked[1] - 0.9729) < 1e-3
    assert "notes:" in ax.texts[0].get_text()


def test_digit_grid_marks_errors_in_red():
    images = torch.zeros(10, 1, 28, 28)
    fig = plots.digit_grid(
        images, list(range(10)), predicted=[0] * 10, confidence=[0.9] * 10, ncols=5
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 10 and titles[0] == "0 (0.90) / 0" and titles[3] == "0 (0.90) / 3"
    assert fig.axes[3].title.get_color() == "tab:red" and fig.axes[0].title.get_color() == "black"
    plain = plots.digit_grid(images[:3], [7, 8, 9], ncols=4)
    assert [ax.get_title() for ax in plain.axes] == ["7", "8", "9", ""]


def test_label_histogram_and_image():
    fig = plots.label_histogram(torch.tensor([0, 1, 1, 9]))
    assert [p.get_height() for p in fig.axes[0].patches] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert len(plots.show_image(torch.zeros(1, 28, 28), "x").axes) == 2  # image and colour bar


def test_training_curves_and_confusion():
    history = [
        EpochStats(1, 0.5, 0.8, 0.4, 0.85, 1.0, 0.1),
        EpochStats(2, 0.2, 0.9, 0.3, 0.9, 1.0, 0.1),
    ]
    fig = plots.training_curves(history)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert list(fig.axes[1].lines[1].get_ydata()) == [85.0, 90.0]
    legend = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert legend == ["train", "validation"]  # what fit's history holds in the chapters
    matrix = torch.eye(10, dtype=torch.long) * 5
    assert len(plots.confusion(matrix).axes[0].texts) == 100


def test_comparison_bars():
    fig = plots.comparison_bars(["first", "second"], [1.0, 2.5], "s", "time")
    ax = fig.axes[0]
    assert [t.get_text().strip() for t in ax.texts] == ["1.0", "2.5"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "second"]
    assert ax.yaxis_inverted() and ax.get_xlim()[1] > 2.5  # first on top, values inside
