"""Each figure function returns a figure with the expected axes and content."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from mnist_course import plots  # noqa: E402


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
