"""The machinery behind every chapter's exercises (introduced in chapter 1).

Each chapter's checkers and quiz live in ``mnist_course.chapterNN``; they are
built from the pieces here:

- :class:`Feedback`: the verdict, shown in Jupyter as one line,
  "Correct (name): ..." or "Not yet (name): ...";
- :func:`checker`: turns a checking function into a checker that never raises,
  whatever the learner's code returns or does, and whose hint grows: the first
  "Not yet" names the symptom, a second failing call (or ``hint=2``) adds a
  stronger hint (hints point the way; none is the answer's code). A whole check is stopped after
  :data:`CHECK_TIME_LIMIT`;
- :func:`call`: runs the learner's function with the library functions the
  exercise asks them to write made unavailable, however they are reached (by
  name, held in a default, a closure, a partial or an object, or as the PyTorch
  operator itself); calling one ends in "Not yet: write it yourself, without
  ...". It also stops a function that runs longer than :data:`TIME_LIMIT`;
- :func:`draw`: a fresh seed per check, so each check runs on new inputs;
- :func:`as_array`, :func:`as_float`, :func:`close`: read an answer of any
  type without crashing.

A checking function returns the success message, or raises :class:`NotYet`.
"""

from __future__ import annotations

import builtins
import contextlib
import dis
import functools
import importlib
import inspect
import itertools
import signal
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_course import i18n

_ = i18n.translator(__name__)
N_ = i18n.N_


@dataclass(frozen=True)
class Feedback:
    """The checker's verdict: ``ok`` and one message. Shown as its message in Jupyter."""

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return _("Correct ({exercise}): {message}").format(
                exercise=self.exercise, message=self.message
            )
        return _("Not yet ({exercise}): {message}").format(
            exercise=self.exercise, message=self.message
        )

    __repr__ = __str__


class NotYet(Exception):
    """Ends a checking function with "Not yet": the symptom, and a stronger hint for later."""

    def __init__(self, symptom: str, hint: str = "") -> None:
        super().__init__(symptom)
        self.symptom = symptom
        self.hint = hint


class ForbiddenCall(Exception):
    """The learner's code called a function that the exercise asks them to write."""


# How often each exercise has failed in this kernel: the second failure shows the hint.
_failures: dict[str, int] = {}

# The last verdict of each exercise's checker in this kernel. `mnist-course grade` reads it
# (never the text a cell printed, which the learner's code could print too).
verdicts: dict[str, Feedback] = {}

# The seed of every check's inputs (see :func:`draw`), and how often each exercise drew.
SEED = 0
_draws: dict[str, int] = {}

# Seconds a learner's function may run before it is stopped, and a whole check (0: no limit).
TIME_LIMIT = 60.0
CHECK_TIME_LIMIT = 600.0


class TimedOut(BaseException):
    """Code ran past its time limit (the seconds are ``args[0]``). A BaseException, so
    ``except Exception`` in the learner's code does not swallow it."""


EXPECTS = N_("the answer the exercise asks for")


def translated(text: str, module: str) -> str:
    """``text`` (marked with ``N_`` in ``module``) in the language now, from that module's catalog."""
    return i18n.translator(module)(text)


def translated_labels(labels: dict[str, str], module: str) -> dict[str, str]:
    """An ``ops=`` table (operator -> label marked with ``N_`` in ``module``), its labels translated."""
    return {op: translated(label, module) for op, label in labels.items()}


def checker(
    name: str, expects: str = EXPECTS
) -> Callable[[Callable[..., str]], Callable[..., Feedback]]:
    """Decorator: a checking function (returns a message or raises :class:`NotYet`) -> a checker.

    The checker takes the same arguments plus ``hint=``; it returns a
    :class:`Feedback`, records it in :data:`verdicts`, and never raises
    (``KeyboardInterrupt`` aside). ``expects`` says what the checker takes, for
    the message when it cannot read an answer (marked with ``N_`` in the checker's module,
    translated with that module's catalog).
    """

    def wrap(check: Callable[..., str]) -> Callable[..., Feedback]:
        @functools.wraps(check)
        def run(*args: Any, hint: int | None = None, **kwargs: Any) -> Feedback:
            verdicts.pop(name, None)  # a check that never returns leaves no verdict behind
            feedback = _run_check(*args, hint=hint, **kwargs)
            verdicts[name] = feedback
            return feedback

        def _run_check(*args: Any, hint: int | None = None, **kwargs: Any) -> Feedback:
            try:
                with time_limit(CHECK_TIME_LIMIT):
                    message = check(*args, **kwargs)
            except NotYet as not_yet:
                _failures[name] = _failures.get(name, 0) + 1
                level = hint if isinstance(hint, int) else _failures[name]
                text = not_yet.symptom
                if not_yet.hint and level >= 2:
                    text = _("{symptom} Hint: {hint}").format(symptom=text, hint=not_yet.hint)
                elif not_yet.hint:
                    text = _("{symptom} (Run the check again, or pass hint=2, for a hint.)").format(
                        symptom=text
                    )
                return Feedback(name, False, text)
            except TimedOut as err:  # e.g. an answer whose __float__ never returns
                return Feedback(
                    name,
                    False,
                    _(
                        "the check ran for more than {seconds:g} s and was stopped; "
                        "it expects {expects}."
                    ).format(seconds=err.args[0], expects=_expects()),
                )
            except (Exception, SystemExit) as err:  # still no crash
                return Feedback(
                    name,
                    False,
                    _(
                        "the checker could not read your answer ({error}); it expects {expects}."
                    ).format(error=type(err).__name__, expects=_expects()),
                )
            _failures.pop(name, None)
            return Feedback(name, True, str(message))

        def _expects() -> str:
            if expects == EXPECTS:
                return _(expects)
            return translated(expects, check.__module__)

        run.exercise = name  # type: ignore[attr-defined]
        return run

    return wrap


def draw(name: str) -> int:
    """A fresh seed for this call of exercise ``name``'s checker: :data:`SEED` + the call count.

    Each check runs on inputs drawn for that call, so replaying earlier numbers
    does not pass; tests set :data:`SEED` (and clear :data:`_draws`) to reproduce.
    """
    count = _draws.get(name, 0)
    _draws[name] = count + 1
    return SEED + count


def _resolve(path: str) -> tuple[Any, str]:
    """``"torch.nn.functional.softmax"`` -> (the module or class that holds it, ``"softmax"``)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1]
    raise ValueError(f"cannot find {path}")


class _Blocker:
    """Stands in for a forbidden function (or ufunc): calling it, or any attribute of it
    (``np.logaddexp.reduce``), raises :class:`ForbiddenCall`."""

    def __init__(self, label: str, called: list[str]) -> None:
        self._label = label
        self._called = called

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._called.append(self._label)
        raise ForbiddenCall(self._label)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self


@contextlib.contextmanager
def forbid(paths: Iterable[str], scope: dict[str, Any] | None = None) -> Iterator[list[str]]:
    """Make the functions at ``paths`` raise :class:`ForbiddenCall` for a while.

    Each is replaced where it is defined (``torch.softmax``, ``torch.Tensor.softmax``, ...)
    and under any name that ``scope`` (the learner's globals) binds it to, so
    ``from torch.nn.functional import softmax as sm`` is caught too. Yields the
    list of forbidden names that were called (even if the learner's code
    caught the exception). Everything is restored on exit.
    """
    called: list[str] = []
    restore: list[Callable[[], None]] = []
    try:
        originals: dict[int, str] = {}
        for path in paths:
            owner, attr = _resolve(path)
            original = getattr(owner, attr)
            originals[id(original)] = path
            had_own = attr in vars(owner)
            setattr(owner, attr, _Blocker(_label(path), called))
            restore.append(
                functools.partial(setattr, owner, attr, original)
                if had_own
                else functools.partial(delattr, owner, attr)
            )
        for key, value in list((scope or {}).items()):
            if id(value) in originals:
                scope[key] = _Blocker(_label(originals[id(value)]), called)  # type: ignore[index]
                restore.append(functools.partial(scope.__setitem__, key, value))  # type: ignore[union-attr]
        yield called
    finally:
        for undo in reversed(restore):
            undo()


# ---- refusing a forbidden function however it is reached ---------------------------------

# Modules whose functions are not looked into (their insides are the library's business).
_LIBRARIES = ("torch", "numpy", "scipy", "torchvision", "sklearn", "torchmetrics", "mnist_course")


def _is_reference(obj: Any) -> bool:
    """A function of the checkers' own modules (``mnist_course.chapterNN``): a reference answer."""
    module = getattr(obj, "__module__", None) or ""
    return module.startswith("mnist_course.chapter") and callable(obj)


def _code_refs(
    code: types.CodeType, scope: dict[str, Any], cells: dict[str, Any] | None = None
) -> Iterator[Any]:
    """Everything a function's code names: globals, closure cells and attribute chains
    (``np.logaddexp.reduce``, ``helper.softmax``)."""
    local: dict[str, Any] = dict(cells or {})
    current: Any = None
    for ins in dis.get_instructions(code):
        name = ins.argval if isinstance(ins.argval, str) else ""
        if ins.opname == "LOAD_GLOBAL":
            current = scope.get(name, getattr(builtins, name, None))
        elif ins.opname in ("LOAD_FAST", "LOAD_DEREF", "LOAD_NAME"):
            current = local.get(name)
        elif ins.opname == "IMPORT_NAME":
            current = sys.modules.get(name.split(".")[0])
            local["<import>"] = sys.modules.get(name)
        elif ins.opname == "IMPORT_FROM":
            current = getattr(local.get("<import>"), name, None)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and current is not None:
            try:
                current = inspect.getattr_static(current, name)
            except AttributeError:
                current = None
            if isinstance(current, (staticmethod, classmethod)):
                current = current.__func__
        elif ins.opname in ("STORE_FAST", "STORE_NAME") and current is not None:
            local[name] = current
            continue
        else:
            current = None
            continue
        if current is not None:
            yield current
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_refs(const, scope, cells)


def _children(obj: Any) -> list[Any]:
    """What ``obj`` holds that could be called in its place."""
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, types.MethodType):
        return [obj.__func__, obj.__self__]
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        items = obj.values() if isinstance(obj, dict) else obj
        return list(itertools.islice(items, 200))
    if isinstance(obj, (types.ModuleType, type, np.ndarray, str, bytes)) or _is_tensor(obj):
        return []
    if isinstance(obj, types.BuiltinFunctionType):  # np.logaddexp.reduce is bound to np.logaddexp
        owner = getattr(obj, "__self__", None)
        return [] if isinstance(owner, types.ModuleType) or owner is None else [owner]
    if isinstance(obj, types.FunctionType):
        module = (obj.__module__ or "").split(".")[0]
        if module in _LIBRARIES:
            return []
        held = [*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()]
        cells = {
            name: cell.cell_contents
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False)
            if _filled(cell)
        }
        held += list(cells.values())
        return held + list(_code_refs(obj.__code__, obj.__globals__, cells))
    if callable(obj):  # an object with __call__: its method and what it holds
        call_method = inspect.getattr_static(type(obj), "__call__", None)
        return [call_method, *getattr(obj, "__dict__", {}).values()]
    return []


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def held_forbidden(fn: Any, forbidden: dict[int, str], limit: int = 2000) -> str | None:
    """The label of a forbidden function that ``fn`` holds or names, however deep, if any.

    Looks through defaults, closure cells, ``functools.partial``, callable objects,
    containers and the globals (and attribute chains) its code names, in any module.
    A function of the checkers' own modules counts as forbidden too.
    """
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(fn, 0)]
    while stack and len(seen) < limit:
        obj, depth = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) in forbidden:
            return forbidden[id(obj)]
        try:
            if _is_reference(obj) and not hasattr(obj, "exercise"):
                name = getattr(obj, "__name__", type(obj).__name__)
                return _("the course's own answer `{name}`").format(name=f"{obj.__module__}.{name}")
            if depth < 6:
                stack.extend((child, depth + 1) for child in _children(obj))
        except Exception:  # an odd object (its attributes raise): nothing more to look into
            continue
    return None


def _originals(paths: Iterable[str]) -> dict[int, str]:
    """id of each forbidden function (before any patching) -> its label."""
    found = {}
    for path in paths:
        owner, attr = _resolve(path)
        found[id(getattr(owner, attr))] = _label(path)
    return found


def _label(path: str) -> str:
    """How a message names a forbidden path: ``torch.optim.Optimizer.__init__`` -> any optimiser."""
    return f"`{path.removesuffix('.__init__')}`"


@contextlib.contextmanager
def _torch_guards(
    functions: dict[int, str], ops: dict[str, str], no_autograd: bool, called: list[str]
) -> Iterator[None]:
    """PyTorch's guards (mnist_course.guards) around the learner's call, when PyTorch is loaded
    (resolving a forbidden torch path loads it) or the check needs them; otherwise none: code
    that never imported torch cannot reach a torch function (chapter 1 runs without PyTorch)."""
    if not (ops or no_autograd or "torch" in sys.modules):
        yield
        return
    from mnist_course import guards

    autograd = _("autograd (write the gradient out yourself)")
    with (
        guards.FunctionGuard(functions, no_autograd, called, autograd),
        guards.OpGuard(ops, called),
    ):
        yield


def _is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing PyTorch when it is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimedOut` in the code inside after ``seconds`` (main thread, with SIGALRM).

    Nests: inside an enclosing limit that ends sooner, the enclosing one stays in
    charge; otherwise the enclosing limit is restored, less the time spent, on exit.
    """
    usable = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0] if usable else 0.0
    if not usable or 0 < outer_left <= seconds:
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise TimedOut(seconds)

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            left = outer_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def run_learner(
    fn: Any,
    *args: Any,
    forbidden: Iterable[str] = (),
    ops: dict[str, str] | None = None,
    no_autograd: bool = False,
) -> Any:
    """Run the learner's ``fn(*args)`` under every guard; return what it returns (None too).

    ``forbidden``: dotted paths refused by attribute, by what ``fn`` holds, and (for
    torch functions) by identity; ``ops``: aten operator name -> label, refused however
    reached; ``no_autograd``: refuse every use of autograd. Raises :class:`NotYet`
    when it is refused, raises, exits, or runs past :data:`TIME_LIMIT`.
    """
    if not callable(fn):
        raise NotYet(
            _("expected a function, got {type}: pass the function itself.").format(type=a_type(fn))
        )
    forbidden = list(forbidden)
    originals = _originals(forbidden)
    label = held_forbidden(fn, originals)
    if label:
        raise NotYet(_("write it yourself, without {label}.").format(label=label))
    try:
        with (
            forbid(forbidden, _globals_of(fn)) as called,
            _torch_guards(originals, ops or {}, no_autograd, called),
            np.errstate(all="ignore"),
            warnings.catch_warnings(),
            time_limit(TIME_LIMIT),
        ):
            warnings.simplefilter("ignore")
            result = fn(*args)
    except ForbiddenCall as err:
        raise NotYet(_("write it yourself, without {label}.").format(label=err)) from None
    except TimedOut as err:
        if err.args and err.args[0] != TIME_LIMIT:
            raise  # an enclosing limit (the whole check's): not this function's own
        raise NotYet(
            _(
                "your function ran for more than {seconds:g} s and was stopped: "
                "does a loop never end?"
            ).format(seconds=TIME_LIMIT)
        ) from None
    except SystemExit:
        raise NotYet(
            _("your function called sys.exit() (or exit()); return the answer instead.")
        ) from None
    except NotImplementedError:
        raise NotYet(
            _("the function is not written yet (it raises NotImplementedError).")
        ) from None
    except Exception as err:  # the learner's code may raise anything
        raise NotYet(
            _("your function raised {error}: {message}").format(
                error=type(err).__name__, message=_safe_str(err)
            )
        ) from None
    if called:
        raise NotYet(_("write it yourself, without {label}.").format(label=called[0]))
    return result


def call(
    fn: Any,
    *args: Any,
    forbidden: Iterable[str] = (),
    ops: dict[str, str] | None = None,
    no_autograd: bool = False,
) -> Any:
    """:func:`run_learner`, and a result of None is "Not yet" (a forgotten ``return``)."""
    result = run_learner(fn, *args, forbidden=forbidden, ops=ops, no_autograd=no_autograd)
    if result is None:
        raise NotYet(_("your function returned None: did you forget `return`?"))
    return result


def _globals_of(fn: Any) -> dict[str, Any] | None:
    """The module globals of a plain function (None for other callables)."""
    return fn.__globals__ if isinstance(fn, types.FunctionType) else None


def _safe_str(value: Any) -> str:
    try:
        return str(value)[:300]
    except Exception:
        return _("(its message cannot be shown)")


def a_type(value: Any) -> str:
    """``a list``, ``an int``: the type of ``value`` with its article."""
    name = type(value).__name__
    # 'u' reads as "you" in the names a learner meets (uint8, ufunc): "a uint8"
    if name[:1].lower() in "aeio":
        return _("an {name}").format(name=name)
    return _("a {name}").format(name=name)


WHAT = N_("your function")
ARRAY = N_("an array or a tensor")


def _own(text: str, default: str) -> str:
    """A default of this module in the language now; the caller's own text as it is (the caller
    translates it)."""
    return _(text) if text == default else text


ONE_NUMBER = N_("one number")


def as_array(value: Any, what: str = WHAT, want: str = ARRAY) -> np.ndarray:
    """The answer as a float64 array, or :class:`NotYet` saying why it cannot be one
    (``what``: whose answer; ``want``: what the exercise asks for, named in that message;
    either translated by the caller, the defaults here)."""
    what, want = _own(what, WHAT), _own(_own(want, ARRAY), ONE_NUMBER)
    if isinstance(value, tuple):
        raise NotYet(
            _("{what} returned a tuple of {count} items; return {want}.").format(
                what=what, count=len(value), want=want
            )
        )
    try:
        if _is_tensor(value):
            value = value.detach().cpu().double().numpy()
        array = np.asarray(value, dtype=np.float64)
    except Exception:
        raise NotYet(
            _("{what} returned {type}, which is not an array of numbers: return {want}.").format(
                what=what, type=a_type(value), want=want
            )
        ) from None
    return array


def as_float(value: Any, what: str = WHAT) -> float:
    """The answer as one number, or :class:`NotYet` saying why it is not one."""
    array = as_array(value, what, want=ONE_NUMBER)
    if array.size != 1:
        raise NotYet(
            _("{what} returned shape {shape}; return one number.").format(
                what=_own(what, WHAT), shape=array.shape
            )
        )
    return float(array.reshape(()))


def close(a: Any, b: Any, tol: float = 1e-6) -> bool:
    """Same shape, all finite, and equal within ``tol`` (relative and absolute).

    NaN and inf are never close, to anything: a non-finite answer never passes.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False
    return bool(np.allclose(a, b, atol=tol, rtol=tol))
