"""Two live classroom demos built with ipywidgets (chapters 1 and 5).

- :func:`temperature_demo` (chapter 1): a slider over the temperature ``T`` in
  ``softmax(z / T)``, with the bar chart of the probabilities and the
  cross-entropy loss updating as it moves.
- :func:`draw_digit_demo` (chapter 5): a canvas (ipycanvas) to draw a digit on
  with the mouse, the 28 x 28 image the network sees (made the way MNIST was
  made) and the network's ten probabilities, updated after each stroke.

The widgets only show and forward events; what they display is computed by
plain functions (:func:`temperature_view`, :func:`render_strokes`,
:func:`to_mnist`, :func:`digit_probabilities`), tested without a browser.
Charts are PNG bytes in an ``ipywidgets.Image`` (not an ``Output`` widget,
which strict nbval cannot compare), drawn on matplotlib ``Figure`` objects that
pyplot never sees, so no figure is left open or shown twice.

Widgets do not render inside the jupyterlab-rise slideshow (open upstream
issues): present these demos from JupyterLab's notebook view (Presentation
Mode or Simple Interface, full screen).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from mnist_course import losses
from mnist_course.data import MNIST_MEAN, MNIST_STD

if TYPE_CHECKING:
    import torch

# ----------------------------------------------------------------------------
# Softmax temperature (chapter 1)
# ----------------------------------------------------------------------------

# What a widget's text repr adds: RISE slides and static pages show only this text.
WHERE = ": a live widget, shown in JupyterLab's notebook view"
T_MIN, T_MAX = 0.1, 10.0  # the slider's range; it moves on a log scale


@dataclass(frozen=True)
class TemperatureView:
    """What the temperature demo shows for one ``T``."""

    temperature: float
    probabilities: np.ndarray
    loss: float
    text: str


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"the temperature T must be a positive number, got {temperature!r}")
    return t


def _check_logits_label(logits: ArrayLike, label: int) -> tuple[np.ndarray, int]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size < 2:
        raise ValueError(
            f"logits must be one sample's scores, shape (C,) with C >= 2, got {z.shape}"
        )
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise TypeError(f"label must be a class index (an int), got {label!r}")
    if not 0 <= label < z.size:
        raise ValueError(f"label must lie in [0, {z.size - 1}], got {label}")
    return z, int(label)


def temperature_view(logits: ArrayLike, label: int, temperature: float) -> TemperatureView:
    """Probabilities ``softmax(z / T)`` and the loss ``-log p[label]`` at temperature ``T``.

    Both come from the course's reference code (:mod:`mnist_course.losses`):
    the loss is ``cross_entropy(z / T, label)``. ``T = 1`` is the plain softmax;
    small ``T`` sharpens it towards the arg-max, large ``T`` flattens it
    towards ``1 / C`` (the loss then tends to ``log C``).
    """
    z, label = _check_logits_label(logits, label)
    t = _check_temperature(temperature)
    p = losses.softmax(z / t)
    loss = float(losses.cross_entropy(z / t, np.int64(label)))
    probs = ", ".join(f"{v:.3f}" for v in p)
    text = f"T = {t:.2f} · probabilities [{probs}] · loss = -log p[{label}] = {loss:.3f}"
    return TemperatureView(t, p, loss, text)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def temperature_png(
    logits: ArrayLike,
    label: int,
    temperature: float,
    class_names: Sequence[str] | None = None,
) -> bytes:
    """The bar chart of ``softmax(z / T)`` as PNG bytes, the true class in green (chapter 1)."""
    view = temperature_view(logits, label, temperature)
    names = _class_names(len(view.probabilities), label, class_names)
    fig = Figure(figsize=(6.0, 3.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = ["tab:green" if i == label else "tab:blue" for i in range(len(names))]
    ax.bar(names, view.probabilities, color=colors)
    for i, value in enumerate(view.probabilities):
        ax.text(i, value + 0.02, f"{value:.3f}", ha="center")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("probability")
    ax.set_title(f"softmax(z / T) at T = {view.temperature:.2f}: loss = {view.loss:.3f}")
    return _png(fig)


def _class_names(n: int, label: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        names = [str(name) for name in class_names]
        if len(names) != n:
            raise ValueError(f"{len(names)} class names for {n} classes")
        return names
    return [f"{i} (true)" if i == label else str(i) for i in range(n)]


class TemperatureDemo(widgets.VBox):
    """The softmax-temperature widget: a log slider for ``T``, a chart and a text line."""

    def __init__(
        self, logits: ArrayLike, label: int, class_names: Sequence[str] | None = None
    ) -> None:
        z, label = _check_logits_label(logits, label)
        self.logits, self.label = z, label
        self.class_names = _class_names(z.size, label, class_names)
        self.slider = widgets.FloatLogSlider(
            value=1.0,
            base=10,
            min=np.log10(T_MIN),
            max=np.log10(T_MAX),
            step=0.05,
            description="T",
            readout_format=".2f",
            layout=widgets.Layout(width="600px"),
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="600px"))
        self.text = widgets.Label()
        super().__init__([self.slider, self.image, self.text])
        self.slider.observe(self._on_change, names="value")
        self.show(1.0)

    def show(self, temperature: float) -> TemperatureView:
        """Redraw the chart and the text for ``temperature`` (the slider calls this)."""
        view = temperature_view(self.logits, self.label, temperature)
        self.image.value = temperature_png(self.logits, self.label, temperature, self.class_names)
        self.text.value = view.text
        return view

    def _on_change(self, change: dict) -> None:
        self.show(change["new"])

    def __repr__(self) -> str:  # fixed text, no memory address; shown where widgets cannot be
        return f"TemperatureDemo({self.logits.size} classes, true class {self.label}){WHERE}"


def temperature_demo(
    logits: ArrayLike, label: int, class_names: Sequence[str] | None = None
) -> TemperatureDemo:
    """Chapter 1's live demo: move ``T`` and watch ``softmax(z / T)`` and the loss change."""
    return TemperatureDemo(logits, label, class_names)


# ----------------------------------------------------------------------------
# Draw a digit (chapter 5)
# ----------------------------------------------------------------------------

CANVAS_SIZE = 280  # pixels; 10 canvas pixels per MNIST pixel
PEN_WIDTH = 22  # canvas pixels
BOX = 20  # MNIST: the digit's bounding box is scaled to fit 20 x 20 ...
FIELD = 28  # ... then placed in a 28 x 28 field ...
CENTRE = 14  # ... its centre of mass at pixel (14, 14) (0-based; measured on MNIST's images)
EMPTY_TEXT = "Draw a digit (0-9) in the white box with the mouse."

Stroke = Sequence[tuple[float, float]]


def render_strokes(
    strokes: Sequence[Stroke], size: int = CANVAS_SIZE, width: int = PEN_WIDTH
) -> np.ndarray:
    """Mouse strokes (lists of ``(x, y)`` canvas points) -> ink image ``(size, size)`` in [0, 1].

    Each stroke is a round-capped line of ``width`` pixels, as the canvas draws it.
    """
    from PIL import Image, ImageDraw

    picture = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(picture)
    r = width / 2
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=255, width=width, joint="curve")
        for x, y in points:  # round caps and joints
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(picture, dtype=np.float32) / 255.0


def to_mnist(image: ArrayLike) -> np.ndarray:
    """A drawing -> the 28 x 28 image MNIST would have made of it (chapter 5).

    ``image`` is 2-D, ink = high values (any scale), background = 0. As for
    MNIST (LeCun et al.): the digit's bounding box is scaled to fit a 20 x 20
    box, keeping its aspect ratio, with anti-aliasing (grey levels); then it is
    placed in a 28 x 28 field so that its centre of mass (intensity-weighted
    mean pixel position) lands on the field's centre. Returns float32 in
    [0, 1], the digit's brightest pixel 1; an empty drawing gives all zeros.
    """
    import torch
    import torch.nn.functional as F

    ink = np.asarray(image, dtype=np.float64)
    if ink.ndim != 2:
        raise ValueError(f"to_mnist expects a 2-D image, got shape {ink.shape}")
    ink = np.nan_to_num(np.clip(ink, 0, None))
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    if ink.max() <= 0:
        return out
    rows, cols = np.nonzero(ink)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    crop = crop / crop.max()
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(
        torch.from_numpy(crop)[None, None],
        size=(new_h, new_w),
        mode="bilinear",
        antialias=True,  # averages the pixels each output pixel covers when shrinking
        align_corners=False,
    )[0, 0].numpy()
    small = np.clip(small, 0, None)
    if small.max() <= 0:
        return out
    small = small / small.max()
    ys, xs = np.mgrid[0:new_h, 0:new_w]
    mass = small.sum()
    com_y, com_x = (small * ys).sum() / mass, (small * xs).sum() / mass
    # whole-pixel shift (as MNIST's centres of mass sit within half a pixel of (14, 14)),
    # kept inside the field so that no ink is cut off
    top = int(np.clip(np.floor(CENTRE - com_y + 0.5), 0, FIELD - new_h))
    left = int(np.clip(np.floor(CENTRE - com_x + 0.5), 0, FIELD - new_w))
    out[top : top + new_h, left : left + new_w] = small
    return out


def centre_of_mass(image: ArrayLike) -> tuple[float, float]:
    """Intensity-weighted mean ``(row, column)`` of a 2-D image (chapter 5's demo)."""
    img = np.asarray(image, dtype=np.float64)
    mass = img.sum()
    if mass <= 0:
        raise ValueError("an empty image has no centre of mass")
    ys, xs = np.indices(img.shape)
    return float((img * ys).sum() / mass), float((img * xs).sum() / mass)


def model_input(image28: ArrayLike) -> torch.Tensor:
    """A 28 x 28 image in [0, 1] -> the ``(1, 1, 28, 28)`` tensor the course's models take.

    Normalised as in chapter 3: ``(x - MNIST_MEAN) / MNIST_STD``.
    """
    import torch

    x = torch.as_tensor(np.asarray(image28, dtype=np.float32))
    if x.shape != (FIELD, FIELD):
        raise ValueError(f"expected a 28 x 28 image, got shape {tuple(x.shape)}")
    return ((x - MNIST_MEAN) / MNIST_STD)[None, None]


def digit_probabilities(model: torch.nn.Module, image28: ArrayLike) -> np.ndarray:
    """The model's ten softmax probabilities for one 28 x 28 image in [0, 1] (chapter 5)."""
    import torch

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(model_input(image28).to(device))
    finally:
        model.train(was_training)
    return torch.softmax(logits.cpu().double(), dim=1)[0].numpy()  # (MPS has no float64)


def prediction_text(probabilities: ArrayLike | None) -> str:
    """The line under the demo: the predicted digit and its probability, or how to start."""
    if probabilities is None:
        return EMPTY_TEXT
    p = np.asarray(probabilities, dtype=np.float64)
    digit = int(p.argmax())
    return f"The network says: {digit} (probability {p[digit]:.2f})"


def network_view_png(image28: ArrayLike, size: int = CANVAS_SIZE) -> bytes:
    """The 28 x 28 image enlarged with square pixels, ink dark as in the course's figures."""
    from PIL import Image

    ink = np.clip(np.asarray(image28, dtype=np.float64), 0, 1)
    picture = Image.fromarray(((1 - ink) * 255).round().astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    picture.resize((size, size), Image.Resampling.NEAREST).save(buffer, format="png")
    return buffer.getvalue()


def probabilities_png(probabilities: ArrayLike | None) -> bytes:
    """Bars of the ten probabilities as PNG bytes (all zero before anything is drawn)."""
    p = np.zeros(10) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    fig = Figure(figsize=(3.6, 2.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    best = int(p.argmax()) if p.any() else -1
    ax.bar(range(10), p, color=["tab:green" if i == best else "tab:blue" for i in range(10)])
    ax.set_xticks(range(10))
    ax.set_ylim(0, 1)
    ax.set_xlabel("digit")
    ax.set_title("softmax probabilities")
    return _png(fig)


class DrawDigitDemo(widgets.VBox):
    """The draw-a-digit widget: canvas, what the network sees, probabilities, Clear button."""

    def __init__(self, model: torch.nn.Module) -> None:
        from ipycanvas import Canvas

        self.model = model
        self.strokes: list[list[tuple[float, float]]] = []
        self._drawing = False
        px = f"{CANVAS_SIZE}px"
        # A fixed layout: a stretched canvas lets the notebook toolbar swallow the mouse-down.
        self.canvas = Canvas(
            width=CANVAS_SIZE, height=CANVAS_SIZE, layout=widgets.Layout(width=px, height=px)
        )
        self.seen = widgets.Image(format="png", layout=widgets.Layout(width=px, height=px))
        self.bars = widgets.Image(format="png", layout=widgets.Layout(width="360px"))
        self.text = widgets.Label()
        self.clear_button = widgets.Button(description="Clear", icon="eraser")
        framed = [
            widgets.Box([item], layout=widgets.Layout(border="2px solid gray", margin="0 12px 0 0"))
            for item in (self.canvas, self.seen)
        ]
        titles = [widgets.Label(t) for t in ("you draw", "the network sees (28 x 28)", "")]
        columns = [
            widgets.VBox([title, item])
            for title, item in zip(titles, [*framed, self.bars], strict=True)
        ]
        super().__init__([widgets.HBox(columns), widgets.HBox([self.clear_button, self.text])])
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_mouse_out(self._up)
        self.clear_button.on_click(lambda _: self.clear())
        self.clear()

    def _paper(self) -> None:
        self.canvas.clear()
        self.canvas.fill_style = "white"
        self.canvas.fill_rect(0, 0, CANVAS_SIZE, CANVAS_SIZE)
        self.canvas.stroke_style = "black"
        self.canvas.fill_style = "black"
        self.canvas.line_width = PEN_WIDTH
        self.canvas.line_cap = "round"
        self.canvas.line_join = "round"

    def clear(self) -> None:
        """Wipe the canvas and the prediction."""
        self.strokes = []
        self._drawing = False
        self._paper()
        self.update()

    def _down(self, x: float, y: float) -> None:
        self._drawing = True
        self.strokes.append([(x, y)])
        self.canvas.fill_circle(x, y, PEN_WIDTH / 2)

    def _move(self, x: float, y: float) -> None:
        if not self._drawing:
            return
        x0, y0 = self.strokes[-1][-1]
        self.strokes[-1].append((x, y))
        self.canvas.stroke_line(x0, y0, x, y)

    def _up(self, x: float, y: float) -> None:
        if self._drawing:
            self._drawing = False
            self.update()

    def update(self) -> np.ndarray | None:
        """Recompute from the strokes: the 28 x 28 image, the probabilities, the text."""
        image28 = to_mnist(render_strokes(self.strokes))
        probabilities = digit_probabilities(self.model, image28) if image28.any() else None
        self.seen.value = network_view_png(image28)
        self.bars.value = probabilities_png(probabilities)
        self.text.value = prediction_text(probabilities)
        return probabilities

    def __repr__(self) -> str:  # fixed text: no memory address, no model printout
        return f"DrawDigitDemo({type(self.model).__name__}){WHERE}"


def draw_digit_demo(model: torch.nn.Module) -> DrawDigitDemo:
    """Chapter 5's live demo: draw a digit, see what the trained ``model`` makes of it."""
    return DrawDigitDemo(model)
