"""PyTorch's side of the checkers' guards (mnist_course.exercises): refuse torch functions and
operators while a learner's function runs, whichever name or path reached them.

A module of its own so that a chapter that never uses PyTorch (chapter 1, in NumPy) does not
import it: :func:`mnist_course.exercises.run_learner` imports this module only when PyTorch is
already loaded, or when the check asks for an operator guard or for no autograd.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from mnist_course.exercises import ForbiddenCall


class OpGuard(TorchDispatchMode):
    """Refuses PyTorch operators by name (``aten::_softmax``), whichever function reached them."""

    def __init__(self, ops: dict[str, str], called: list[str]) -> None:
        super().__init__()
        self.ops = ops
        self.called = called

    def __torch_dispatch__(self, func: Any, types_: Any, args: Any = (), kwargs: Any = None) -> Any:
        label = self.ops.get(func._schema.name)
        if label:
            self.called.append(label)
            raise ForbiddenCall(label)
        return func(*args, **(kwargs or {}))


_AUTOGRAD_NAMES = {"requires_grad_", "backward", "grad", "_make_dual", "jvp", "vjp"}


class FunctionGuard(TorchFunctionMode):
    """Refuses torch functions by identity and, with ``no_autograd``, any use of autograd
    (reported as ``autograd_label``)."""

    def __init__(
        self, functions: dict[int, str], no_autograd: bool, called: list[str], autograd_label: str
    ) -> None:
        super().__init__()
        self.functions = functions
        self.no_autograd = no_autograd
        self.called = called
        self.autograd_label = autograd_label

    def _refuse(self, label: str) -> None:
        self.called.append(label)
        raise ForbiddenCall(label)

    def __torch_function__(self, func: Any, types_: Any, args: Any = (), kwargs: Any = None) -> Any:
        label = self.functions.get(id(func))
        if label:
            self._refuse(label)
        if self.no_autograd and (
            getattr(func, "__name__", "") in _AUTOGRAD_NAMES
            or torch._C._functorch.peek_interpreter_stack() is not None
        ):
            self._refuse(self.autograd_label)
        result = func(*args, **(kwargs or {}))
        if self.no_autograd and isinstance(result, torch.Tensor) and result.requires_grad:
            self._refuse(self.autograd_label)
        return result
