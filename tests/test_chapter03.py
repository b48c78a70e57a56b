"""Chapter 3's checkers and quiz: right answers pass, each typical mistake gets its message."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as v2F
from torchvision import transforms

from mnist_course import chapter03, data, exercises


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs), whatever ran before."""
    monkeypatch.setattr(exercises, "_draws", {})


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_mnist_data.ipynb"


# ----------------------------------------------------------------------------- normalize


def stats(images):
    pixels = images.float() / 255
    return pixels.mean().item(), pixels.std().item()


def normalize(images, mean, std):
    return ((images.float() / 255 - mean) / std).unsqueeze(1)


def check_normalize(pixel_stats=stats, norm=normalize, **kwargs):
    return chapter03.check_normalize(pixel_stats, norm, **kwargs)


def stats_loop(im):
    """Running sums over the images, one at a time (float64)."""
    total = total_sq = 0.0
    count = 0
    for image in im:
        x = image.double() / 255
        total += x.sum().item()
        total_sq += (x**2).sum().item()
        count += x.numel()
    mean = total / count
    return mean, math.sqrt((total_sq - count * mean**2) / (count - 1))


def stats_float32_numpy(im):
    x = im.numpy().astype(np.float32) / np.float32(255)
    return float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))


@pytest.mark.parametrize(
    "pixel_stats",
    [
        stats,
        lambda im: tuple(torch.std_mean(im.double() / 255))[::-1],
        lambda im: (np.mean(im.numpy() / 255), np.std(im.numpy() / 255)),  # biased std is fine
        lambda im: torch.stack(torch.std_mean(im.float() / 255)[::-1]),  # a tensor of two
        lambda im: [(im / 255.0).mean(), (im / 255.0).std()],
        lambda im: np.array([np.mean(im.numpy() / 255), np.std(im.numpy() / 255)]),  # issue 16
        stats_loop,
        stats_float32_numpy,
        lambda im: torch.tensor([[stats(im)[0]], [stats(im)[1]]]),  # a 2 x 1 tensor
    ],
)
def test_right_statistics_pass(pixel_stats):
    assert check_normalize(pixel_stats).ok


@pytest.mark.parametrize(
    "norm",
    [
        normalize,
        lambda im, m, s: ((im.float() / 255 - m) / s)[:, None],
        lambda im, m, s: (im.float().div(255).sub(m).div(s)).view(-1, 1, 28, 28),
        lambda im, m, s: torch.from_numpy(
            ((im.numpy() / 255 - m) / s).astype(np.float32)
        ).unsqueeze(1),
    ],
)
def test_right_normalize_passes(norm):
    feedback = check_normalize(norm=norm)
    assert feedback.ok, feedback.message
    assert "float32" in feedback.message


def normalize_loop(im, m, s):
    out = torch.empty(len(im), 1, *im.shape[1:])
    for i, image in enumerate(im):
        out[i, 0] = (image.float() / 255 - m) / s
    return out


@pytest.mark.parametrize(
    "norm",
    [
        normalize_loop,
        lambda im, m, s: torch.einsum("nhw->nhw", (im / 255.0 - m) / s).unsqueeze(1).float(),
        lambda im, m, s: (im.unsqueeze(1).to(torch.float32) - 255 * m) / (255 * s),
    ],
    ids=["loop", "einsum", "scaled constants"],
)
def test_right_normalize_in_other_styles_passes(norm):
    feedback = check_normalize(norm=norm)
    assert feedback.ok, feedback.message
    assert "float32" in feedback.message


def test_the_checker_uses_a_batch_unlike_mnist():
    mean, std = chapter03._reference_stats(chapter03.stats_images())
    assert abs(mean - data.MNIST_MEAN) > 0.03 and abs(std - data.MNIST_STD) > 0.03


def pixels(im):
    return im.double() / 255


STATS_MISTAKES = {
    "MNIST's own numbers": lambda im: (0.1307, 0.3081),
    "255 times too large": lambda im: (im.double().mean().item(), im.double().std().item()),
    "return (mean, std)": lambda im: stats(im)[::-1],
    "the variance": lambda im: (stats(im)[0], pixels(im).var().item()),
    "spread of the image means": lambda im: (
        stats(im)[0],
        pixels(im).mean(dim=(1, 2)).std().item(),
    ),
    "each image's own std": lambda im: (stats(im)[0], pixels(im).std(dim=(1, 2)).mean().item()),
    "each pixel position's std": lambda im: (stats(im)[0], pixels(im).std(dim=0).mean().item()),
    "your mean is": lambda im: (stats(im)[0] + 0.01, stats(im)[1]),
    "your std is too low": lambda im: (stats(im)[0], 0.5 * stats(im)[1]),
}


@pytest.mark.parametrize("expected, pixel_stats", STATS_MISTAKES.items(), ids=list(STATS_MISTAKES))
def test_each_statistics_mistake_has_its_message(expected, pixel_stats):
    feedback = check_normalize(pixel_stats)
    assert not feedback.ok
    assert expected in feedback.message, feedback.message


def test_a_refused_layer_gets_its_own_hint_not_the_uint8_one():
    def by_layer(images):
        flat = images.float().div(255).reshape(1, 1, -1)
        F.batch_norm(flat, None, None, training=True)
        return flat.mean(), flat.std()

    feedback = check_normalize(by_layer, lambda im, m, s: im, hint=2)
    assert not feedback.ok and "uint8" not in feedback.message, feedback.message


def test_mean_of_uint8_gets_the_float_hint():
    feedback = check_normalize(lambda im: (im.mean(), im.std()), hint=2)
    assert not feedback.ok
    assert "raised RuntimeError" in feedback.message and ".float()" in feedback.message


NORMALIZE_MISTAKES = {
    "divide by 255": lambda im, m, s: ((im.float() - m) / s).unsqueeze(1),
    "swapped": lambda im, m, s: ((im.float() / 255 - s) / m).unsqueeze(1),
    "multiplied by the std": lambda im, m, s: ((im.float() / 255 - m) * s).unsqueeze(1),
    "did not normalise": lambda im, m, s: (im.float() / 255).unsqueeze(1),
    "MNIST's constants": lambda im, m, s: ((im.float() / 255 - 0.1307) / 0.3081).unsqueeze(1),
    "channel dimension is missing": lambda im, m, s: (im.float() / 255 - m) / s,
    "channel dimension is last": lambda im, m, s: ((im.float() / 255 - m) / s).unsqueeze(-1),
    "flattened": lambda im, m, s: ((im.float() / 255 - m) / s).view(len(im), -1),
    "models use float32": lambda im, m, s: ((im.double() / 255 - m) / s).unsqueeze(1),
    "NumPy array": lambda im, m, s: ((im.numpy() / 255 - m) / s)[:, None],
    "values differ": lambda im, m, s: ((im.float() / 256 - m) / s).unsqueeze(1),
    "shape (8, 28)": lambda im, m, s: ((im.float() / 255 - m) / s)[:, 0],
}


@pytest.mark.parametrize("expected, norm", NORMALIZE_MISTAKES.items(), ids=list(NORMALIZE_MISTAKES))
def test_each_normalize_mistake_has_its_message(expected, norm):
    feedback = check_normalize(norm=norm)
    assert not feedback.ok
    assert expected in feedback.message


@pytest.mark.parametrize(
    "norm",
    [
        lambda im, m, s: transforms.Normalize((m,), (s,))(im.float().unsqueeze(1) / 255),
        lambda im, m, s: TF.normalize(im.float().unsqueeze(1) / 255, [m], [s]),
        lambda im, m, s: data.normalize(im),
        lambda im, m, s: torch.stack([data.course_transform()(x.numpy()) for x in im]),
    ],
)
def test_calling_the_library_normalize_is_refused(norm):
    feedback = check_normalize(norm=norm)
    assert not feedback.ok
    assert "write it yourself, without `" in feedback.message


@pytest.mark.parametrize(
    "norm",
    [
        lambda im, m, s: v2F.normalize_image(im.float()[:, None] / 255, [m], [s]),
        lambda im, m, s: v2F.normalize(
            v2F.to_dtype(im[:, None], torch.float32, scale=True), [m], [s]
        ),
        lambda im, m, s: F.batch_norm(
            im.float()[:, None] / 255, torch.tensor([m]), torch.tensor([s * s]), eps=0.0
        ),
        lambda im, m, s, _n=data.normalize: _n(im),
        functools.partial(TF.normalize, mean=[0.25], std=[0.35]),
        lambda im, m, s: bn(m, s)(im.float()[:, None] / 255),
    ],
    ids=["v2 normalize_image", "v2 to_dtype", "F.batch_norm", "default", "partial", "BatchNorm2d"],
)
def test_other_routes_to_a_library_normalize_are_refused(norm):
    feedback = check_normalize(norm=norm)
    assert not feedback.ok and "write it yourself, without" in feedback.message, feedback.message


def bn(m, s):
    layer = torch.nn.BatchNorm2d(1, eps=0.0, affine=False).eval()
    layer.running_mean.fill_(m)
    layer.running_var.fill_(s * s)
    return layer


def test_statistics_typed_in_from_an_earlier_check_do_not_pass():
    heard = []

    def listen(im):
        heard.append(stats(im))
        return heard[-1]

    assert check_normalize(listen).ok
    assert not check_normalize(lambda im: heard[0]).ok


def test_a_wrong_statistic_does_not_show_the_expected_value():
    heard = []

    def off(im):
        heard.append(stats(im))
        return heard[-1][0] * 1.1, heard[-1][1]

    feedback = check_normalize(off)
    assert not feedback.ok and "too high" in feedback.message
    assert f"{heard[0][0]:.3g}" not in feedback.message


def test_the_v2_normalize_is_refused_too():
    from torchvision.transforms import v2

    feedback = check_normalize(norm=lambda im, m, s: v2.Normalize([m], [s])(im.float()[:, None]))
    assert "write it yourself, without `torchvision.transforms.v2.Normalize`" in feedback.message


def test_everything_is_restored_after_the_check():
    check_normalize(norm=lambda im, m, s: data.normalize(im))
    assert data.normalize(torch.zeros(1, 28, 28, dtype=torch.uint8)).shape == (1, 1, 28, 28)
    assert transforms.Normalize is transforms.transforms.Normalize


def raises(*args):
    raise ValueError("oops")


ODD = {
    "None": lambda *a: None,
    "a string": lambda *a: "mean",
    "a tuple of three": lambda *a: (1.0, 2.0, 3.0),
    "NaN": lambda *a: (math.nan, math.nan),
    "an exception": raises,
    "not written": lambda *a: exec("raise NotImplementedError()"),
    "a dict": lambda *a: {"mean": 0.1},
}


@pytest.mark.parametrize("odd", ODD.values(), ids=list(ODD))
def test_odd_returns_never_raise(odd):
    for feedback in (
        check_normalize(odd),
        check_normalize(norm=odd),
        chapter03.check_channels_first(odd),
    ):
        assert isinstance(feedback, exercises.Feedback) and not feedback.ok
    assert not check_normalize("not a function").ok


def test_a_nan_normalize_is_not_accepted():
    feedback = check_normalize(norm=lambda im, m, s: torch.full((8, 1, 28, 28), math.nan))
    assert not feedback.ok and "values differ" in feedback.message


def test_the_hint_grows_on_the_second_call():
    def wrong(im, m, s):
        return (im.float() - m) / s

    exercises._failures.pop("normalize", None)
    first = check_normalize(norm=wrong)
    second = check_normalize(norm=wrong)
    assert "Hint:" not in first.message and "hint=2" in first.message
    assert "Hint:" in second.message
    assert check_normalize().ok
    assert "Hint:" not in check_normalize(norm=wrong).message  # a success resets it
    assert "Hint:" in check_normalize(norm=wrong, hint=2).message


# ----------------------------------------------------------------------------- channels_first


def to_chw(batch):
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize(
    "fn",
    [
        to_chw,
        lambda b: torch.from_numpy(np.ascontiguousarray(b.transpose(0, 3, 1, 2))).float() / 255,
        lambda b: torch.tensor(np.moveaxis(b, -1, 1), dtype=torch.float32) / 255,
        lambda b: torch.as_tensor(b).movedim(3, 1).to(torch.float32).div(255),
    ],
)
def test_right_layout_passes(fn):
    assert chapter03.check_channels_first(fn).ok


def test_the_layout_batch_is_not_square():
    n, h, w, c = chapter03.layout_batch().shape
    assert h != w and c == 3


LAYOUT_MISTAKES = {
    "height and width are swapped": lambda b: torch.from_numpy(b).float().transpose(1, 3) / 255,
    "channels are still last": lambda b: torch.from_numpy(b).float() / 255,
    "pixels are scrambled": lambda b: (
        torch.from_numpy(b).float().reshape(b.shape[0], b.shape[3], b.shape[1], b.shape[2]) / 255
    ),
    "still 0-255": lambda b: torch.from_numpy(b).permute(0, 3, 1, 2).float(),
    "ToTensor gives float32": lambda b: torch.from_numpy(b.transpose(0, 3, 1, 2) / 255),
    "NumPy array": lambda b: b.transpose(0, 3, 1, 2) / 255,
    "expected N x C x H x W": lambda b: torch.from_numpy(b[0]).permute(2, 0, 1).float() / 255,
    "values differ": lambda b: torch.from_numpy(b).permute(0, 3, 1, 2).float() / 256,
}


@pytest.mark.parametrize("expected, fn", LAYOUT_MISTAKES.items(), ids=list(LAYOUT_MISTAKES))
def test_each_layout_mistake_has_its_message(expected, fn):
    feedback = chapter03.check_channels_first(fn)
    assert not feedback.ok
    assert expected in feedback.message


def test_a_three_channel_only_answer_fails_on_grey_images():
    def only_rgb(b):
        return to_chw(b)[:, :3] if b.shape[3] == 3 else torch.zeros(1)

    feedback = chapter03.check_channels_first(only_rgb)
    assert not feedback.ok and "expected N x C x H x W = (3, 1, 4, 6)" in feedback.message


@pytest.mark.parametrize(
    "fn",
    [
        lambda b: torch.stack([transforms.ToTensor()(x) for x in b]),
        lambda b: torch.stack([TF.to_tensor(x) for x in b]),
    ],
)
def test_calling_to_tensor_is_refused(fn):
    feedback = chapter03.check_channels_first(fn)
    assert not feedback.ok
    assert "write it yourself, without `" in feedback.message


def test_the_layout_hint_grows():
    exercises._failures.pop("channels_first", None)
    wrong = LAYOUT_MISTAKES["pixels are scrambled"]
    assert "Hint:" not in chapter03.check_channels_first(wrong).message
    assert "permute" in chapter03.check_channels_first(wrong).message


@pytest.mark.parametrize(
    "fn",
    [
        lambda b: torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x in b]).float() / 255,
        lambda b: torch.from_numpy(np.einsum("nhwc->nchw", b).astype(np.float32) / 255),
        lambda b: (
            torch.tensor(
                [
                    [[[row[c] for row in line] for line in img] for c in range(b.shape[3])]
                    for img in b.tolist()
                ]
            )
            / 255.0
        ),
    ],
    ids=["loop over images", "einsum", "nested lists"],
)
def test_right_layout_in_other_styles_passes(fn):
    feedback = chapter03.check_channels_first(fn)
    assert feedback.ok, feedback.message


@pytest.mark.parametrize(
    "fn",
    [
        lambda b: v2F.to_dtype(torch.from_numpy(b).permute(0, 3, 1, 2), torch.float32, scale=True),
        lambda b: torch.stack([v2F.to_image(x) for x in b]).float() / 255,
    ],
    ids=["v2 to_dtype", "v2 to_image"],
)
def test_other_routes_to_to_tensor_are_refused(fn):
    feedback = chapter03.check_channels_first(fn)
    assert not feedback.ok and "write it yourself, without" in feedback.message, feedback.message


# ----------------------------------------------------------------------------- quiz, notebook


def test_the_quiz_key_is_right():
    key = chapter03.QUIZ
    assert key[2].answer == pytest.approx((0 - data.MNIST_MEAN) / data.MNIST_STD, abs=1e-4)
    assert (
        key[3].answer
        == math.ceil((60_000 - data.VAL_SIZE) / 64)
        == len(data.TensorLoader(torch.zeros(55_000), torch.zeros(55_000), batch_size=64))
    )
    assert "24 images" in key[3].explanation and 55_000 - 859 * 64 == 24
    assert 60_000 * 784 * 4 == 188_160_000 and round(188_160_000 / 2**20) == 179
    answers = {n: q.answer for n, q in key.items()}
    assert chapter03.check_quiz(answers).ok
    assert not chapter03.check_quiz({}).ok
    assert 3 <= len(key) <= 5


def test_to_tensor_gives_c_h_w_as_quiz_question_1_says():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    assert tuple(transforms.ToTensor()(image).shape) == (3, 480, 640)


def test_the_notebook_lists_the_exercises_in_order():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    names = [c["metadata"]["exercise"] for c in cells if "checker" in c["metadata"].get("tags", [])]
    assert tuple(names) == chapter03.EXERCISES
    for cell in cells:
        if "answer" in cell["metadata"].get("tags", []):
            assert "### BEGIN SOLUTION" in "".join(cell["source"])


def test_the_checker_s_own_statistics_are_refused():
    feedback = check_normalize(lambda im: chapter03._reference_stats(im))
    assert not feedback.ok and "course's own answer" in feedback.message, feedback.message
    feedback = check_normalize(functools.partial(chapter03._reference_stats))
    assert not feedback.ok and "course's own answer" in feedback.message, feedback.message
