"""Exercises and quiz of chapter 3 (The MNIST data).

- ``normalize``: compute the mean and std of uint8 images' pixels in [0, 1],
  and normalise images with given statistics to float32 ``N x 1 x 28 x 28``;
- ``channels_first``: turn a batch of ``N x H x W x C`` uint8 images (as PIL or
  OpenCV give them) into PyTorch's float32 ``N x C x H x W`` in [0, 1].

The checkers test on inputs of their own whose statistics and shapes differ
from MNIST's, so an answer that hard-codes 0.1307 or assumes 28 x 28 fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mnist_course import data, exercises, i18n, quiz
from mnist_course.exercises import NotYet, a_type, as_array, as_float, call, checker, draw

_ = i18n.translator(__name__)
N_ = i18n.N_

EXERCISES: tuple[str, ...] = ("normalize", "channels_first")

NORMALIZERS = [
    "torchvision.transforms.Normalize",
    "torchvision.transforms.transforms.Normalize",
    "torchvision.transforms.functional.normalize",
    "torchvision.transforms.v2.Normalize",
    "torchvision.transforms.v2.functional.normalize",
    "torchvision.transforms.v2.functional.normalize_image",
    "torchvision.transforms.v2.functional.to_dtype",
    "torchvision.transforms.v2.ToDtype",
    "torch.nn.functional.batch_norm",
    "torch.nn.functional.instance_norm",
    "torch.nn.functional.layer_norm",
    "torch.nn.functional.group_norm",
    "mnist_course.data.normalize",
    "mnist_course.data.course_transform",
]
# The normalisation layers' operators, however they are reached (F.batch_norm, nn.BatchNorm2d...).
NORM_OPS: dict[str, str] = {
    name: N_("a normalisation layer (batch_norm, instance_norm, layer_norm, ...)")
    for name in (
        "aten::native_batch_norm",
        "aten::_native_batch_norm_legit",
        "aten::_native_batch_norm_legit_no_training",
        "aten::native_layer_norm",
        "aten::native_group_norm",
    )
}
TO_TENSORS = [
    "torchvision.transforms.ToTensor",
    "torchvision.transforms.transforms.ToTensor",
    "torchvision.transforms.functional.to_tensor",
    "torchvision.transforms.PILToTensor",
    "torchvision.transforms.functional.pil_to_tensor",
    "torchvision.transforms.v2.ToImage",
    "torchvision.transforms.v2.functional.to_image",
    "torchvision.transforms.v2.functional.to_dtype",
    "torchvision.transforms.v2.ToDtype",
]
STATS_HINT = N_(
    "turn the bytes into pixels in [0, 1] first; then take one mean and one std over all "
    "the pixels at once."
)
NORMALIZE_HINT = N_(
    "scale the bytes to [0, 1], subtract the mean, divide by the std, then add the channel "
    "dimension."
)


def ops() -> dict[str, str]:
    """:data:`NORM_OPS`, its labels in the language now."""
    return exercises.translated_labels(NORM_OPS, __name__)


def stats_images(seed: int = 3) -> torch.Tensor:
    """64 uint8 "images" (64, 28, 28) whose statistics are far from MNIST's.

    The share of ink differs a lot from image to image and from the centre to
    the border, so the std of all pixels, the std of the image means, the mean
    of the per-image stds and the mean of the per-position stds all differ.
    """
    g = torch.Generator().manual_seed(seed)
    share = torch.linspace(0.05, 0.9, 64).view(64, 1, 1)  # ink varies by image
    r = torch.arange(28, dtype=torch.float32)
    centre = torch.exp(-((r - 13.5) ** 2) / 60)  # and by position, as in MNIST
    ink = torch.rand(64, 28, 28, generator=g) < share * centre.view(28, 1) * centre
    level = torch.randint(90, 256, (64, 28, 28), generator=g)
    return (ink * level).to(torch.uint8)


def _reference_stats(images: torch.Tensor) -> tuple[float, float]:
    pixels = images.double() / 255
    return float(pixels.mean()), float(pixels.std())


def _stats_mistakes(images: torch.Tensor) -> dict[str, tuple[float, float]]:
    """(mean, std) that typical wrong answers give, each with its message."""
    raw = images.double()
    pixels = raw / 255
    mean, std = _reference_stats(images)
    return {
        _(
            "these are MNIST's own numbers (0.1307, 0.3081); compute the statistics of the "
            "images you are given."
        ): (data.MNIST_MEAN, data.MNIST_STD),
        _(
            "your numbers are 255 times too large: divide the bytes by 255 first, so the "
            "pixels are in [0, 1]."
        ): (raw.mean().item(), raw.std().item()),
        _("you returned (std, mean); return (mean, std)."): (std, mean),
        _("your std is the variance: take its square root."): (mean, std**2),
        _("your std is the spread of the image means; take the std of all pixels at once."): (
            mean,
            pixels.mean(dim=(1, 2)).std().item(),
        ),
        _(
            "your std is the average of each image's own std; take the std of all pixels "
            "at once (pixels.std())."
        ): (mean, pixels.std(dim=(1, 2)).mean().item()),
        _(
            "your std is the average of each pixel position's std over the images; take "
            "the std of all pixels at once (pixels.std())."
        ): (mean, pixels.std(dim=0).mean().item()),
    }


def _near(a: float, b: float, rel: float = 1e-4) -> bool:
    return bool(np.isfinite(a)) and abs(a - b) <= rel * max(abs(b), 1e-12)


def _read_pair(result: Any) -> tuple[float, float]:
    """Two numbers from a tuple, a list, or any 2-element tensor or array."""
    if isinstance(result, (torch.Tensor, np.ndarray)) and np.prod(result.shape) == 2:
        result = tuple(result.reshape(-1))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        if isinstance(result, (tuple, list)):
            symptom = _(
                "pixel_stats returned {type} of {count} items; return two numbers: "
                "the mean, then the std."
            ).format(type=a_type(result), count=len(result))
        else:
            symptom = _(
                "pixel_stats returned {type}; return two numbers: the mean, then the std."
            ).format(type=a_type(result))
        raise NotYet(
            symptom,
            _("return the two numbers as a tuple: mean, std."),
        )
    return as_float(result[0], _("the mean")), as_float(result[1], _("the std"))


def _check_pixel_stats(pixel_stats: Callable[..., Any], seed: int) -> tuple[float, float]:
    images = stats_images(3 + seed)
    try:
        result = call(pixel_stats, images.clone(), ops=ops())
    except NotYet as err:  # the uint8 hint only where the error is about the dtype
        dtype_error = "dtype" in err.symptom or "Byte" in err.symptom
        raise NotYet(
            _("pixel_stats: {message}").format(message=err.symptom),
            _(
                "the images are uint8: convert them with .float() (or .double()) before "
                "mean() and std(), and divide by 255."
            )
            if dtype_error
            else err.hint,
        ) from None
    mean, std = _read_pair(result)
    expected = _reference_stats(images)
    if _near(mean, expected[0]) and _near(std, expected[1]):
        return expected
    for message, (m, s) in _stats_mistakes(images).items():
        if _near(mean, m) and _near(std, s):
            raise NotYet(_("pixel_stats: {message}").format(message=message), _(STATS_HINT))
    if not _near(mean, expected[0]):
        if not np.isfinite(mean):
            symptom = _("pixel_stats: your mean is {value}.")
        elif mean > expected[0]:
            symptom = _("pixel_stats: on a test batch your mean is too high.")
        else:
            symptom = _("pixel_stats: on a test batch your mean is too low.")
        raise NotYet(symptom.format(value=mean), _(STATS_HINT))
    if not np.isfinite(std):
        symptom = _("pixel_stats: your std is {value}.")
    elif std > expected[1]:
        symptom = _("pixel_stats: on a test batch your std is too high.")
    else:
        symptom = _("pixel_stats: on a test batch your std is too low.")
    raise NotYet(symptom.format(value=std), _(STATS_HINT))


def _normalize_mistakes(images: torch.Tensor, mean: float, std: float) -> dict[str, np.ndarray]:
    x = images.double()
    p = x / 255
    return {
        _(
            "you forgot to divide by 255: the bytes must become pixels in [0, 1] before "
            "subtracting the mean."
        ): (x - mean) / std,
        _("mean and std are swapped: compute (x / 255 - mean) / std."): (p - std) / mean,
        _("you multiplied by the std; divide by it: (x / 255 - mean) / std."): (p - mean) * std,
        _("you scaled to [0, 1] but did not normalise: subtract the mean, divide by the std."): p,
        _("you used MNIST's constants; use the mean and std passed to your function."): (
            p - data.MNIST_MEAN
        )
        / data.MNIST_STD,
    }


def _check_normalize_fn(normalize: Callable[..., Any], seed: int) -> None:
    images = stats_images(seed=5 + seed)[:8]
    g = torch.Generator().manual_seed(seed)
    # not MNIST's, and new for each check: the function must use its arguments
    mean, std = (
        0.2 + 0.1 * torch.rand((), generator=g).item(),
        0.4 + 0.1 * torch.rand((), generator=g).item(),
    )
    result = call(normalize, images.clone(), mean, std, forbidden=NORMALIZERS, ops=ops())
    if isinstance(result, np.ndarray):
        raise NotYet(
            _("normalize returned a NumPy array; return a torch tensor."),
            _("stay in torch: images.float() / 255 is already a tensor."),
        )
    if not isinstance(result, torch.Tensor):
        as_array(result, "normalize")  # explains tuples and other odd returns
        raise NotYet(
            _("normalize returned {type}; return a torch tensor.").format(type=a_type(result))
        )
    got = as_array(result, "normalize")
    n = len(images)
    shapes = {
        (n, 28, 28): _(
            "the channel dimension is missing: a batch is N x C x H x W, so add it "
            "with .unsqueeze(1)."
        ),
        (n, 28, 28, 1): _(
            "the channel dimension is last; PyTorch wants N x C x H x W: use .unsqueeze(1)."
        ),
        (n, 784): _("you flattened the images; keep them as N x 1 x 28 x 28 (the model flattens)."),
    }
    if got.shape != (n, 1, 28, 28):
        raise NotYet(
            shapes.get(
                got.shape,
                _("shape {shape}; expected {expected}.").format(
                    shape=got.shape, expected=(n, 1, 28, 28)
                ),
            ),
            _(NORMALIZE_HINT),
        )
    expected = ((images.double() / 255 - mean) / std).unsqueeze(1).numpy()
    if not np.allclose(got, expected, atol=1e-5, rtol=1e-5):
        for message, wrong in _normalize_mistakes(images, mean, std).items():
            if np.allclose(got, wrong.unsqueeze(1).numpy(), atol=1e-4, rtol=1e-4):
                raise NotYet(_("normalize: {message}").format(message=message), _(NORMALIZE_HINT))
        raise NotYet(
            _("normalize: the values differ from (x / 255 - mean) / std."), _(NORMALIZE_HINT)
        )
    if result.dtype != torch.float32:
        raise NotYet(
            _("normalize returned {dtype}; models use float32.").format(dtype=result.dtype),
            _("use images.float() (float32), not .double() or NumPy's float64."),
        )


@checker(
    "normalize",
    expects=N_(
        "both functions: check_normalize(pixel_stats, normalize), pixel_stats(images) "
        "returning (mean, std) and normalize(images, mean, std) returning a tensor"
    ),
)
def check_normalize(pixel_stats: Callable[..., Any], normalize: Callable[..., Any]) -> str:
    """``pixel_stats(uint8 images) -> (mean, std)`` and ``normalize(images, mean, std)``."""
    seed = draw("normalize")
    _check_pixel_stats(pixel_stats, seed)
    _check_normalize_fn(normalize, seed)
    return _(
        "your statistics are right on a batch unlike MNIST, and normalize gives float32 "
        "N x 1 x 28 x 28 with mean and std taken from its arguments."
    )


def layout_batch(shape: tuple[int, int, int, int] = (2, 5, 7, 3), seed: int = 4) -> np.ndarray:
    """Random uint8 images N x H x W x C (height 5 and width 7 differ on purpose)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _check_layout(to_chw: Callable[..., Any], batch: np.ndarray) -> None:
    n, h, w, c = batch.shape
    result = call(to_chw, batch.copy(), forbidden=TO_TENSORS, ops=ops())
    if isinstance(result, np.ndarray):
        raise NotYet(
            _("to_chw returned a NumPy array; return a torch tensor."),
            _("torch has a function that makes a tensor from a NumPy array (sharing its memory)."),
        )
    if not isinstance(result, torch.Tensor):
        as_array(result, "to_chw")
        raise NotYet(
            _("to_chw returned {type}; return a torch tensor.").format(type=a_type(result))
        )
    got = as_array(result, "to_chw")
    hint = _(
        "make a tensor of the array, move the channel axis to position 1 (permute), "
        "then convert to float32 and scale to [0, 1]."
    )
    if got.shape == (n, c, w, h) and h != w:
        raise NotYet(
            _(
                "shape {shape} is N x C x W x H: height and width are swapped (the lecture "
                "notes' 'w * h'). Images are {h} high and {w} wide; keep H before W."
            ).format(shape=got.shape, h=h, w=w),
            _("move only the channel axis, with permute."),
        )
    if got.shape == batch.shape and c != h:
        raise NotYet(
            _("the channels are still last (N x H x W x C); PyTorch wants N x C x H x W."), hint
        )
    if got.shape != (n, c, h, w):
        raise NotYet(
            _("shape {shape}; expected N x C x H x W = {expected}.").format(
                shape=got.shape, expected=(n, c, h, w)
            ),
            hint,
        )
    right = np.transpose(batch, (0, 3, 1, 2)).astype(np.float64)
    scrambled = batch.reshape(n, c, h, w).astype(np.float64)
    if not np.allclose(got, right / 255, atol=1e-6):
        if c > 1 and np.allclose(got, scrambled / 255, atol=1e-6):
            raise NotYet(
                _(
                    "the shape is right but the pixels are scrambled: reshape/view keeps the "
                    "bytes in memory order (R, G, B, R, G, B, ...), it does not move the channel "
                    "axis."
                ),
                _("use permute, which moves axes."),
            )
        if np.allclose(got, right, atol=1e-6):
            raise NotYet(_("the values are still 0-255: divide by 255 to get [0, 1]."), hint)
        raise NotYet(_("the values differ from the images' pixels divided by 255."), hint)
    if result.dtype != torch.float32:
        raise NotYet(
            _("to_chw returned {dtype}; ToTensor gives float32.").format(dtype=result.dtype),
            _("convert with .float(); dividing a NumPy uint8 array by 255 gives float64."),
        )


@checker(
    "channels_first",
    expects=N_(
        "a function to_chw(batch) that takes a uint8 N x H x W x C NumPy array and returns a tensor"
    ),
)
def check_channels_first(to_chw: Callable[..., Any]) -> str:
    """``to_chw(uint8 N x H x W x C numpy) -> float32 N x C x H x W tensor in [0, 1]``."""
    seed = draw("channels_first")
    _check_layout(to_chw, layout_batch(seed=4 + seed))
    _check_layout(to_chw, layout_batch((3, 4, 6, 1), seed=6 + seed))
    return _(
        "right for colour (C = 3) and grey (C = 1) images whose height and width differ: "
        "N x C x H x W, float32, in [0, 1], like ToTensor."
    )


QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        "c",
        N_(
            "ToTensor turns an H x W x C image into C x H x W: 480 high, 640 wide, 3 channels "
            "gives (3, 480, 640). Height comes before width in both layouts."
        ),
    ),
    2: quiz.Question(
        -0.4242,
        N_(
            "(0 - 0.1307) / 0.3081 = -0.4242: the background is slightly negative after "
            "Normalize, the ink goes up to (1 - 0.1307) / 0.3081 = 2.8215."
        ),
        tolerance=0.001,
    ),
    3: quiz.Question(
        860,
        N_(
            "55,000 / 64 = 859.375: 859 full batches and one last batch of 24 images, "
            "860 in all (the last, partial batch is kept)."
        ),
        tolerance=0,
    ),
    4: quiz.Question(
        "b",
        N_(
            "Picking the best of many settings by their test accuracy selects the luckiest "
            "measurement too, so that accuracy is optimistic; choose on validation and "
            "measure the test set once, at the end."
        ),
    ),
    5: quiz.Question(
        "a",
        N_(
            "60,000 x 784 x 4 bytes = 188,160,000 bytes = 188 MB (179 MiB): it fits in a "
            "laptop's memory, so normalise once and slice batches."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter 3 quiz."""
    return quiz.check("chapter 3", QUIZ, answers, module=__name__)
