"""Cross-entropy in NumPy: the tested reference code of chapters 1 and 2.

Every function mirrors the PyTorch function of the same name
(``torch.nn.functional.one_hot``, ``softmax``, ``log_softmax``,
``cross_entropy``), arguments and results included, so a learner can compare
the two one to one. Computation is in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

REDUCTIONS = ("none", "mean", "sum")


def _float_array(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; check the computation that produced it")
    return arr


def _int_labels(labels: ArrayLike, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        raise TypeError(
            f"{name} must be integer class indices, got dtype {arr.dtype}; "
            f"convert with .astype(np.int64) (PyTorch: torch.long)"
        )
    return arr.astype(np.int64)


def one_hot(labels: ArrayLike, num_classes: int = -1) -> np.ndarray:
    """Class indices -> one-hot rows (chapter 1). Like ``F.one_hot``: int64, ``-1`` infers C."""
    labels = _int_labels(labels)
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise TypeError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 1 and labels.size:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}], got values from "
            f"{labels.min()} to {labels.max()}"
        )
    return (labels[..., None] == np.arange(num_classes)).astype(np.int64)


def log_softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """``log(softmax(z))`` computed stably with the max shift (log-sum-exp), chapter 1.

    ``z - max(z)`` leaves the result unchanged (softmax is shift-invariant) and
    keeps every exponent <= 0, so nothing overflows for any finite input.
    """
    z = _float_array(z, "logits")
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """Probabilities ``exp(z) / sum(exp(z))`` along ``axis``, with the max shift (chapter 1)."""
    z = _float_array(z, "logits")
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _check_args(
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    reduction: str,
    label_smoothing: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Validate and normalise to 2-D: (z (N, C), target, weight (C,), prob_target, batched)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    z = _float_array(logits, "logits")
    if z.ndim not in (1, 2):
        raise ValueError(f"logits must have shape (C,) or (N, C), got shape {z.shape}")
    batched = z.ndim == 2
    z2 = z if batched else z[None, :]
    n, c = z2.shape
    if c < 1:
        raise ValueError("logits need at least one class (C >= 1)")
    t = np.asarray(target)
    prob_target = np.issubdtype(t.dtype, np.floating) and t.shape == z.shape
    if prob_target:
        t2 = _float_array(t, "target")
        t2 = t2 if batched else t2[None, :]
    else:
        if np.issubdtype(t.dtype, np.floating):
            raise TypeError(
                f"float target of shape {t.shape} with logits of shape {z.shape}: class-index "
                f"targets must be integers (.astype(np.int64)); probability targets must have "
                f"the logits' shape {z.shape}"
            )
        t = _int_labels(t, "target")
        expected = (n,) if batched else ()
        if t.shape != expected:
            raise ValueError(
                f"target of shape {t.shape} does not match logits of shape {z.shape}: "
                f"class indices need shape {expected}"
            )
        t2 = t.reshape(n)
    if weight is None:
        w = np.ones(c)
    else:
        w = _float_array(weight, "weight")
        if w.shape != (c,):
            raise ValueError(f"weight must have shape ({c},), one per class, got {w.shape}")
        if np.any(w < 0):
            raise ValueError("weight must not be negative")
    return z2, t2, w, prob_target, batched


def _valid_mask(t: np.ndarray, c: int, ignore_index: int) -> np.ndarray:
    keep = t != ignore_index
    bad = t[keep & ((t < 0) | (t >= c))]
    if bad.size:
        raise ValueError(
            f"target holds class indices {sorted(set(bad.tolist()))[:5]} outside [0, {c - 1}] "
            f"(and not ignore_index={ignore_index}); labels must be 0..C-1"
        )
    return keep


def _reduce(per_sample: np.ndarray, denom: float, reduction: str, batched: bool):
    if reduction == "none":
        return per_sample if batched else per_sample[0]
    total = per_sample.sum()
    if reduction == "sum":
        return np.float64(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(total / denom)


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.floating | np.ndarray:
    """Cross-entropy of ``logits`` against ``target``, exactly as ``F.cross_entropy`` (ch. 1-2).

    ``logits`` has shape ``(N, C)`` or ``(C,)``. ``target`` is either class
    indices (integers, shape ``(N,)`` or a scalar) or class probabilities (floats,
    the logits' shape). With index targets, ``mean`` divides by the summed
    weights of the targets that are not ``ignore_index``; with probability
    targets it divides by N.
    """
    z, t, w, prob_target, batched = _check_args(logits, target, weight, reduction, label_smoothing)
    n, c = z.shape
    logp = log_softmax(z)
    eps = float(label_smoothing)
    if prob_target:
        t = t * (1.0 - eps) + eps / c
        per_sample = -(logp * t * w).sum(axis=1)
        return _reduce(per_sample, n, reduction, batched)
    keep = _valid_mask(t, c, ignore_index)
    safe_t = np.where(keep, t, 0)
    w_t = np.where(keep, w[safe_t], 0.0)
    nll = -w_t * logp[np.arange(n), safe_t]
    smooth = np.where(keep, -(logp * w).sum(axis=1), 0.0)
    per_sample = (1.0 - eps) * nll + (eps / c) * smooth
    return _reduce(per_sample, w_t.sum(), reduction, batched)


def cross_entropy_grad(
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.ndarray:
    """dL/dlogits for :func:`cross_entropy` with the same arguments (chapters 1 and 2).

    Without weights or smoothing this is ``softmax(z) - one_hot(y)`` (divided by
    N for ``mean``). For ``reduction="none"`` it is the gradient of the sum of
    the per-sample losses, as ``loss.sum().backward()`` gives.
    """
    z, t, w, prob_target, batched = _check_args(logits, target, weight, reduction, label_smoothing)
    n, c = z.shape
    p = softmax(z)
    eps = float(label_smoothing)
    if prob_target:
        t = t * (1.0 - eps) + eps / c
        wt = t * w
        grad = wt.sum(axis=1, keepdims=True) * p - wt
        denom = n
    else:
        keep = _valid_mask(t, c, ignore_index)
        safe_t = np.where(keep, t, 0)
        w_t = np.where(keep, w[safe_t], 0.0)
        nll_grad = w_t[:, None] * (p - one_hot(safe_t, c))
        smooth_grad = w.sum() * p - w
        grad = ((1.0 - eps) * nll_grad + (eps / c) * smooth_grad) * keep[:, None]
        denom = w_t.sum()
    if reduction == "mean" and denom > 0:  # all targets ignored: PyTorch's gradient is 0
        grad = grad / denom
    return grad if batched else grad[0]
