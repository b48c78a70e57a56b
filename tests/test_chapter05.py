"""mnist_course.chapter05: the training-loop, backprop and accuracy checkers, cmp, and the quiz
(no MNIST)."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import chapter05, exercises


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs)."""
    monkeypatch.setattr(exercises, "_draws", {})


# ---------------------------------------------------------------------------------------------
# train_one_epoch
# ---------------------------------------------------------------------------------------------


def epoch(zero_grad=True, step=True, mode="train", returns="mean", order="usual"):
    """A learner's train_one_epoch, right or with one typical mistake."""

    def train_one_epoch(model, loader, optimizer):
        if mode == "train":
            model.train()
        elif mode == "eval":
            model.eval()
        losses = []
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets)
            if zero_grad and order == "usual":
                optimizer.zero_grad()
            loss.backward()
            if zero_grad and order == "between":
                optimizer.zero_grad()
            if step:
                optimizer.step()
            losses.append(loss.item())
        return {
            "mean": sum(losses) / len(losses),
            "sum": sum(losses),
            "last": losses[-1],
            "tuple": (sum(losses) / len(losses), 0.5),
        }[returns]

    return train_one_epoch


def eval_after_the_loop(model, loader, optimizer):
    """Leaves the model ready for measuring (issue 16: was told eval() was in the loop)."""
    model.train()
    total = 0.0
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total += loss.item()
    model.eval()
    return total / len(loader)


def epoch_float64_sum(model, loader, optimizer):
    """Enumerate, nn.functional.nll_loss of log_softmax, a float64 running sum."""
    model.train(True)
    running = torch.zeros((), dtype=torch.float64)
    count = 0
    for inputs, targets in loader:
        count += 1
        optimizer.zero_grad(set_to_none=False)
        loss = F.nll_loss(F.log_softmax(model(inputs), dim=1), targets)
        loss.backward()
        optimizer.step()
        running += loss.detach().double()
    return running / count


def epoch_list_of_losses(model, loader, optimizer):
    model.train()
    losses = []
    batches = iter(loader)
    while True:
        try:
            inputs, targets = next(batches)
        except StopIteration:
            break
        for p in model.parameters():
            p.grad = None
        loss = torch.nn.CrossEntropyLoss()(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.mean(losses)


def eval_inside_the_loop(model, loader, optimizer):
    model.train()
    total = 0.0
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        model.eval()  # e.g. to print a validation number, never switched back
        total += loss.item()
    return total / len(loader)


@pytest.mark.parametrize("fn", [eval_after_the_loop, epoch_float64_sum, epoch_list_of_losses])
def test_right_loops_in_other_styles_pass(fn):
    for _ in range(2):  # the notebook's case, then a fresh one
        feedback = chapter05.check_train_one_epoch(fn)
        assert feedback.ok, feedback.message


def test_eval_inside_the_loop_is_named():
    feedback = chapter05.check_train_one_epoch(eval_inside_the_loop)
    assert not feedback.ok and "model.eval() in the training loop" in feedback.message


def test_the_right_loop_passes():
    feedback = chapter05.check_train_one_epoch(epoch())
    assert feedback.ok, feedback.message
    assert "the loss fell" in feedback.message


def test_the_lecture_s_loop_with_a_criterion_and_zero_grad_at_the_end_passes():
    criterion = torch.nn.CrossEntropyLoss()

    def train_one_epoch(model, loader, optimizer):
        model.train()
        running = 0.0
        for inputs, targets in loader:
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()  # after the step: the same thing
            running += loss.item()
        return torch.tensor(running / len(loader))

    assert chapter05.check_train_one_epoch(train_one_epoch).ok


@pytest.mark.parametrize(
    ("learner", "message"),
    [
        (epoch(zero_grad=False), "the running sum of this batch's gradient and every"),
        (epoch(step=False), "the optimiser never stepped"),
        (epoch(mode="eval"), "you called model.eval() in the training loop"),
        (epoch(mode=None), "the model ran in eval mode"),
        (epoch(order="between"), "step() skips a parameter without a gradient"),
        (epoch(returns="sum"), "the sum of the batches' losses"),
        (epoch(returns="last"), "the last batch's loss"),
        (epoch(returns="tuple"), "returned a tuple"),
    ],
)
def test_each_typical_mistake_gets_its_own_message(learner, message):
    feedback = chapter05.check_train_one_epoch(learner)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_a_loss_other_than_the_mean_cross_entropy_is_named():
    def summed(model, loader, optimizer):
        model.train()
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets, reduction="sum")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return 1.0

    feedback = chapter05.check_train_one_epoch(summed)
    assert not feedback.ok and "cross-entropy (mean over the batch)" in feedback.message


def test_one_step_per_batch():
    def twice(model, loader, optimizer):
        model.train()
        for inputs, targets in loader:
            for _ in range(2):
                optimizer.zero_grad()
                F.cross_entropy(model(inputs), targets).backward()
                optimizer.step()
        return 1.0

    feedback = chapter05.check_train_one_epoch(twice)
    assert not feedback.ok and "stepped 12 times for 6 batches" in feedback.message


def test_the_course_s_loop_is_not_allowed():
    from mnist_course import training

    def borrowed(model, loader, optimizer):
        return training.train_epoch(model, loader, optimizer)[0]

    def fitted(model, loader, optimizer):
        return training.fit(model, loader, loader, optimizer, 1)[0].train_loss

    for learner in (borrowed, fitted):
        feedback = chapter05.check_train_one_epoch(learner)
        assert not feedback.ok and "write it yourself, without" in feedback.message


@pytest.mark.parametrize(
    "odd",
    [
        lambda m, loader, o: None,
        lambda m, loader, o: "loss",
        lambda m, loader, o: [1.0],
        lambda m, loader, o: float("nan"),
        lambda m, loader, o: torch.zeros(3),
        lambda m, loader, o: 1 / 0,
        lambda m, loader, o: m(torch.zeros(2, 5)),  # wrong input shape: torch raises
        42,
    ],
)
def test_odd_answers_never_raise(odd):
    feedback = chapter05.check_train_one_epoch(odd)
    assert not feedback.ok and feedback.message


def test_odd_returns_after_right_training_are_explained():
    for value, message in [
        (None, "returned None"),
        ("x", "not an array of numbers"),
        (float("nan"), "returned nan"),
        (torch.zeros(3), "return one number"),
    ]:

        def learner(model, loader, optimizer, value=value):
            epoch()(model, loader, optimizer)
            return value

        feedback = chapter05.check_train_one_epoch(learner)
        assert not feedback.ok and message in feedback.message, feedback.message


def test_the_hint_grows_on_the_second_call():
    exercises._failures.pop("train_one_epoch", None)
    first = chapter05.check_train_one_epoch(epoch(zero_grad=False))
    second = chapter05.check_train_one_epoch(epoch(zero_grad=False))
    assert "Hint:" not in first.message and "hint=2" in first.message
    assert "Hint: call optimizer.zero_grad() once per batch" in second.message
    assert "Hint:" in chapter05.check_train_one_epoch(epoch(step=False), hint=2).message


def test_the_reference_loop_learns_and_the_mistake_differs():
    model, batches, optimizer = chapter05._setup()
    before = chapter05._mean_loss(model, batches)
    chapter05._reference_epoch(model, batches, optimizer)
    assert chapter05._mean_loss(model, batches) < before
    other, _, other_optimizer = chapter05._setup()
    chapter05._reference_epoch(other, batches, other_optimizer, zero_grad=False)
    assert not torch.allclose(chapter05._params(model), chapter05._params(other), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------


def accuracy(eval_mode=True, no_grad=True, per_batch=False, percent=False, fixed_total=False):
    """A learner's accuracy, right or with one typical mistake."""

    def fn(model, loader):
        if eval_mode:
            model.eval()
        correct, total, batch_accs = 0, 0, []
        with torch.no_grad() if no_grad else torch.enable_grad():
            for inputs, targets in loader:
                right = (model(inputs).argmax(dim=1) == targets).sum().item()
                correct += right
                total += len(targets)
                batch_accs.append(right / len(targets))
        if fixed_total:
            total = len(loader) * loader.batch_size
        if per_batch:
            return sum(batch_accs) / len(batch_accs)
        return 100 * correct / total if percent else correct / total

    return fn


def first_batch_only(model, loader):
    model.eval()
    with torch.no_grad():
        x, y = next(iter(loader))
        return (model(x).argmax(1) == y).float().mean().item()


def test_the_right_accuracy_passes():
    feedback = chapter05.check_accuracy(accuracy())
    assert feedback.ok and "50 of 74" in feedback.message


def test_the_lecture_s_torch_max_and_inference_mode_pass():
    def lecture(model, loader):
        model.eval()
        correct, total = 0, 0
        with torch.inference_mode():
            for inputs, targets in loader:
                _, predicted = torch.max(model(inputs).data, dim=1)
                total += targets.size(0)
                correct += (predicted == targets).sum()
        return correct / total  # a 0-d tensor is fine

    assert chapter05.check_accuracy(lecture).ok


@pytest.mark.parametrize(
    ("learner", "message"),
    [
        (accuracy(eval_mode=False), "call model.eval() before measuring"),
        (accuracy(no_grad=False), "wrap the loop in `with torch.no_grad():`"),
        (accuracy(per_batch=True), "the mean of the batches' accuracies"),
        (accuracy(percent=True), "a percentage"),
        (accuracy(fixed_total=True), "number of batches x batch size"),
        (lambda m, loader: 1 - accuracy()(m, loader), "the share of WRONG predictions"),
        (
            lambda m, loader: accuracy()(m, loader) * len(loader.dataset),
            "the number of correct predictions",
        ),
        (lambda m, loader: accuracy()(m, loader) * 0.9, "your number is too low"),
        (lambda m, loader: 50 / 74, "never called the model"),
        (first_batch_only, "on 1 of the loader's 3 batches"),
    ],
)
def test_each_accuracy_mistake_gets_its_own_message(learner, message):
    feedback = chapter05.check_accuracy(learner)
    assert not feedback.ok and message in feedback.message, feedback.message


def accuracy_loop(model, loader):
    """Per-image loop, counting in plain Python."""
    model.eval()
    right = seen = 0
    with torch.no_grad():
        for x, y in loader:
            for row, label in zip(model(x), y, strict=True):
                right += int(max(range(len(row)), key=lambda k: row[k]) == label)
                seen += 1
    return right / seen


def accuracy_numpy_float32(model, loader):
    model.eval()
    hits = []
    with torch.inference_mode():
        for x, y in loader:
            hits.append((model(x).argmax(1) == y).numpy())
    return np.concatenate(hits).astype(np.float32).mean()


def accuracy_einsum_tensor(model, loader):
    model.eval()
    with torch.no_grad():
        outs = [(F.one_hot(model(x).argmax(1), 10), F.one_hot(y, 10)) for x, y in loader]
    right = sum(torch.einsum("nc,nc->", a.float(), b.float()) for a, b in outs)
    return right / sum(len(b) for _, b in outs)


@pytest.mark.parametrize("fn", [accuracy_loop, accuracy_numpy_float32, accuracy_einsum_tensor])
def test_right_accuracies_in_other_styles_pass_on_fresh_cases(fn):
    for _ in range(3):  # the notebook's case, then two fresh ones
        feedback = chapter05.check_accuracy(fn)
        assert feedback.ok, feedback.message


def test_each_accuracy_check_draws_a_fresh_case():
    first = chapter05.check_accuracy(accuracy()).message
    second = chapter05.check_accuracy(accuracy()).message
    assert "50 of 74" in first and "50 of 74" not in second
    assert not chapter05.check_accuracy(lambda m, loader: 50 / 74).ok


def test_the_known_accuracy_is_what_the_fake_model_gives():
    model, loader, correct = chapter05.accuracy_case()
    model.eval()
    with torch.no_grad():
        right = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    assert right / len(loader.dataset) == sum(correct) / 74 == 50 / 74
    assert [len(y) for _, y in loader] == [32, 32, 10]
    model.train()
    with torch.no_grad():
        right_in_train_mode = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    assert right_in_train_mode == sum(chapter05.TRAIN_CORRECT) != right


def test_the_course_s_evaluation_is_not_allowed():
    from mnist_course import training

    def borrowed(model, loader):
        return training.evaluate(model, loader)[1]

    def predicted(model, loader):
        logits, labels = training.predict(model, loader)
        return (logits.argmax(1) == labels).float().mean()

    for learner in (borrowed, predicted):
        feedback = chapter05.check_accuracy(learner)
        assert not feedback.ok and "write it yourself, without" in feedback.message


@pytest.mark.parametrize(
    "odd",
    [
        lambda m, loader: None,
        lambda m, loader: (0.5, 0.1),
        lambda m, loader: [0.5],
        lambda m, loader: "0.68",
        lambda m, loader: float("nan"),
        lambda m, loader: torch.zeros(2),
        lambda m, loader: 1 / 0,
        lambda m, loader: m(torch.zeros(3, 784)).sum(),  # wrong input: an IndexError inside
        "accuracy",
    ],
)
def test_odd_accuracy_answers_never_raise(odd):
    feedback = chapter05.check_accuracy(odd)
    assert not feedback.ok and feedback.message


def test_the_accuracy_hint_grows():
    exercises._failures.pop("accuracy", None)
    first = chapter05.check_accuracy(accuracy(per_batch=True))
    second = chapter05.check_accuracy(accuracy(per_batch=True))
    assert "Hint:" not in first.message and "Hint: switch to eval mode" in second.message


# ---------------------------------------------------------------------------------------------
# Backprop by hand: cmp and the backprop checker
# ---------------------------------------------------------------------------------------------


def backprop_by_hand(x, y, W1, b1, W2, b2):
    """The notebook's answer: softmax - onehot, then layer by layer."""
    z1 = x @ W1.T + b1
    h = torch.relu(z1)
    p = torch.softmax(h @ W2.T + b2, dim=1)
    dlogits = (p - F.one_hot(y, p.shape[1])) / len(y)
    dh = dlogits @ W2
    dz1 = dh * (z1 > 0)
    return {
        "logits": dlogits,
        "W2": dlogits.T @ h,
        "b2": dlogits.sum(0),
        "h": dh,
        "z1": dz1,
        "W1": dz1.T @ x,
        "b1": dz1.sum(0),
    }


def backprop_karpathy_style(x, y, W1, b1, W2, b2):
    """x @ W layout with transposed copies, an in-place -1, a mask from h, 'd' keys, float32."""
    x, W1, b1, W2, b2 = (t.float() for t in (x, W1, b1, W2, b2))
    w1, w2 = W1.T.contiguous(), W2.T.contiguous()
    h = (x @ w1 + b1).clamp(min=0)
    logits = h @ w2 + b2
    counts = (logits - logits.max(1, keepdim=True).values).exp()
    dlogits = counts / counts.sum(1, keepdim=True)
    dlogits[range(len(y)), y] -= 1
    dlogits /= len(y)
    dh = dlogits @ w2.T
    dz1 = dh * (h > 0).float()
    grads = {"dW2": (h.T @ dlogits).T, "db2": dlogits.sum(0, keepdim=True)[0]}
    grads.update(dlogits=dlogits, dh=dh, dz1=dz1, dW1=(x.T @ dz1).T, db1=dz1.sum(0))
    return grads


def backprop_numpy_loops(x, y, W1, b1, W2, b2):
    """NumPy, one sample at a time, extra keys."""
    x, W1, b1, W2, b2 = (t.numpy() for t in (x, W1, b1, W2, b2))
    n = len(y)
    out = {k: 0.0 for k in ("W2", "b2", "W1", "b1")}
    out.update(logits=[], h=[], z1=[], extra="ignored")
    for i in range(n):
        z1 = W1 @ x[i] + b1
        h = np.maximum(z1, 0)
        z = W2 @ h + b2
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        p[int(y[i])] -= 1
        dz = p / n
        dh = W2.T @ dz
        dz1 = dh * (z1 > 0)
        out["logits"].append(dz)
        out["h"].append(dh)
        out["z1"].append(dz1)
        out["W2"] = out["W2"] + np.outer(dz, h)
        out["b2"] = out["b2"] + dz
        out["W1"] = out["W1"] + np.outer(dz1, x[i])
        out["b1"] = out["b1"] + dz1
    return {k: np.array(v) if isinstance(v, list) else v for k, v in out.items()}


@pytest.mark.parametrize("fn", [backprop_by_hand, backprop_karpathy_style, backprop_numpy_loops])
def test_right_backprops_pass_on_fresh_cases(fn):
    for _ in range(4):
        feedback = chapter05.check_backprop(fn)
        assert feedback.ok, feedback.message


def test_the_hand_written_gradients_are_autograd_s():
    for seed in range(5):
        case = chapter05.backprop_case(seed)
        ref = chapter05.autograd_backprop(*case)
        mine = backprop_by_hand(*case)
        assert set(ref) == set(chapter05.BACKPROP_KEYS)
        for key in chapter05.BACKPROP_KEYS:
            torch.testing.assert_close(mine[key], ref[key])
    shapes = {tuple(t.shape) for t in chapter05.backprop_case(0)[2:5:2]}
    assert len(shapes) == 2 and all(a != b for a, b in shapes)  # W1, W2 never square


def wrong_backprop(key, change):
    def backprop(x, y, W1, b1, W2, b2):
        grads = backprop_by_hand(x, y, W1, b1, W2, b2)
        grads[key] = change(grads, x, y, W1, b1, W2, b2)
        return grads

    return backprop


def _z1(x, W1, b1):
    return x @ W1.T + b1


@pytest.mark.parametrize(
    ("learner", "message"),
    [
        (wrong_backprop("logits", lambda g, *a: g["logits"] * len(a[1])), "1/N of the mean is"),
        (
            wrong_backprop("logits", lambda g, x, y, *a: g["logits"] + F.one_hot(y, 5) / len(y)),
            "the one-hot target was not subtracted",
        ),
        (wrong_backprop("W2", lambda g, *a: g["W2"].T), "dW2 has shape (12, 5), but W2"),
        (
            wrong_backprop("W2", lambda g, x, y, W1, b1, *a: g["logits"].T @ _z1(x, W1, b1)),
            "it used z1, before the ReLU",
        ),
        (wrong_backprop("b2", lambda g, *a: g["logits"].mean(0)), "mean over the batch"),
        (wrong_backprop("z1", lambda g, *a: g["h"]), "the ReLU mask is missing"),
        (wrong_backprop("W1", lambda g, x, *a: g["h"].T @ x), "it used dh, without the ReLU mask"),
        (wrong_backprop("b1", lambda g, *a: -g["b1"]), "it has the wrong sign"),
        (wrong_backprop("b1", lambda g, *a: g["h"].sum(0)), "it summed dh, without the ReLU"),
        (wrong_backprop("W1", lambda g, x, *a: g["W1"].T), "it is the transpose"),
        (wrong_backprop("b1", lambda g, *a: g["b1"] + 1e-3), "db1 differs from autograd"),
        (wrong_backprop("W1", lambda g, *a: g["W1"] * float("nan")), "dW1 holds nan"),
    ],
)
def test_each_backprop_mistake_names_the_gradient(learner, message):
    feedback = chapter05.check_backprop(learner)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_gradients_before_the_wrong_one_are_named_right(monkeypatch):
    monkeypatch.setattr(exercises, "_failures", {})
    feedback = chapter05.check_backprop(wrong_backprop("z1", lambda g, *a: g["h"]))
    assert "while dlogits, dW2, db2, dh match it" in feedback.message, feedback.message
    assert "Hint" not in feedback.message
    feedback = chapter05.check_backprop(wrong_backprop("z1", lambda g, *a: g["h"]))
    assert "Hint: ReLU lets a value through only where its input was positive" in feedback.message


def test_autograd_is_refused_however_reached():
    def with_backward(x, y, W1, b1, W2, b2):
        params = [t.requires_grad_() for t in (W1, b1, W2, b2)]
        F.cross_entropy(torch.relu(x @ W1.T + b1) @ W2.T + b2, y).backward()
        return dict(zip(("W1", "b1", "W2", "b2"), (p.grad for p in params), strict=True))

    def with_autograd_grad(x, y, W1, b1, W2, b2):
        W1.requires_grad = True
        loss = F.cross_entropy(torch.relu(x @ W1.T + b1) @ W2.T + b2, y)
        return {"W1": torch.autograd.grad(loss, W1)[0]}

    def with_func_grad(x, y, W1, b1, W2, b2):
        def loss(w):
            return F.cross_entropy(torch.relu(x @ w.T + b1) @ W2.T + b2, y)

        return {"W1": torch.func.grad(loss)(W1)}

    def the_checker_s_own(x, y, W1, b1, W2, b2):
        return chapter05.autograd_backprop(x, y, W1, b1, W2, b2)

    def held_in_a_default(x, y, W1, b1, W2, b2, _f=chapter05.autograd_backprop):
        return _f(x, y, W1, b1, W2, b2)

    for learner in (
        with_backward,
        with_autograd_grad,
        with_func_grad,
        the_checker_s_own,
        held_in_a_default,
    ):
        feedback = chapter05.check_backprop(learner)
        assert not feedback.ok and "write it yourself, without" in feedback.message, feedback


def test_a_gradient_that_requires_grad_is_refused():
    made = torch.zeros(1, requires_grad=True)

    def returns_autograd_tensors(x, y, W1, b1, W2, b2):
        grads = backprop_by_hand(x, y, W1, b1, W2, b2)
        grads["logits"] = grads["logits"] + 0 * made  # a tensor autograd tracks
        return grads

    feedback = chapter05.check_backprop(returns_autograd_tensors)
    assert not feedback.ok, feedback.message
    assert "autograd" in feedback.message


@pytest.mark.parametrize(
    "odd",
    [
        lambda *a: None,
        lambda *a: (1, 2),
        lambda *a: {"W1": 1},
        lambda *a: {k: "text" for k in chapter05.BACKPROP_KEYS},
        lambda *a: {k: object() for k in chapter05.BACKPROP_KEYS},
        lambda *a: {k: torch.zeros(3, 3, 3) for k in chapter05.BACKPROP_KEYS},
        lambda *a: 1 / 0,
        lambda: 1,
        42,
    ],
)
def test_odd_backprop_answers_never_raise(odd):
    feedback = chapter05.check_backprop(odd)
    assert not feedback.ok and feedback.message


def test_cmp_prints_exact_approximate_maxdiff_and_shape(capsys):
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    (w**2).sum().backward()
    assert chapter05.cmp("w", 2 * w.detach(), w) == 0.0
    assert 0 < chapter05.cmp("w", 2 * w.detach() + 1e-12, w) < 1e-11
    assert chapter05.cmp("w", 3 * w.detach(), w) > 0.0
    odd = [(w.detach().T, w), ("text", w), (torch.zeros(2), torch.zeros(2)), (None, w)]
    assert all(np.isnan(chapter05.cmp(n, dt, t)) for n, (dt, t) in zip("wwvw", odd, strict=True))
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == "w       | exact: True  | approximate: True  | maxdiff: 0.0e+00 | shape (3, 4)"
    )
    assert "exact: False | approximate: True " in lines[1] and "shape (3, 4)" in lines[1]
    assert "approximate: False" in lines[2]
    assert "shape (4, 3), but the gradient has shape (3, 4)" in lines[3]
    assert "a str, not a tensor" in lines[4]
    assert "t.grad is None" in lines[5]
    assert "no hand-written gradient yet" in lines[6]


# ---------------------------------------------------------------------------------------------
# The quiz
# ---------------------------------------------------------------------------------------------

RIGHT = {1: 0.85, 2: 88, 3: "b", 4: "b", 5: "c"}


def test_the_quiz_key():
    result = chapter05.check_quiz(RIGHT)
    assert result.ok and result.total == 5


def test_the_quiz_explains_wrong_answers_and_never_raises():
    result = chapter05.check_quiz({1: 0.9, 2: 128, 3: "a", 4: "(B)", 5: "d"})
    assert result.right == 1 and "the answer is 0.85" in str(result)
    assert chapter05.check_quiz(None).right == 0
    assert "not answered yet" in str(chapter05.check_quiz({}))


def test_without_zero_grad_grad_is_the_running_sum_and_sgd_gets_momentum_1():
    """Quiz 4's key: .grad sums every gradient so far; plain SGD without zero_grad() takes the
    steps of SGD with momentum 1; zero_grad() after backward() sets .grad to None and step()
    then leaves the parameter alone."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 8, generator=g), torch.randint(0, 3, (48,), generator=g)

    def weights_after(zero_grad, momentum):
        torch.manual_seed(1)
        model = torch.nn.Linear(8, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
        for i in range(0, 48, 16):
            if zero_grad:
                optimizer.zero_grad()
            F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
            optimizer.step()
        return model.weight.detach()

    assert torch.equal(weights_after(False, 0.0), weights_after(True, 1.0))
    model = torch.nn.Linear(8, 3)
    singles = []
    for i in range(0, 48, 16):
        copy = torch.nn.Linear(8, 3)
        copy.load_state_dict(model.state_dict())
        F.cross_entropy(copy(x[i : i + 16]), y[i : i + 16]).backward()
        singles.append(copy.weight.grad)
        F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
    torch.testing.assert_close(model.weight.grad, sum(singles))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    optimizer.zero_grad()
    assert model.weight.grad is None
    optimizer.step()
    assert torch.equal(model.weight, before)


def test_the_quiz_numbers_are_true():
    assert 55_000 - (55_000 // 128) * 128 == chapter05.QUIZ[2].answer
    optimizer = torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=100)
    momenta = []
    for _ in range(100):
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    assert min(momenta) == pytest.approx(chapter05.QUIZ[1].answer)


def test_exercise_names_match_the_checkers():
    checkers = (
        chapter05.check_train_one_epoch,
        chapter05.check_backprop,
        chapter05.check_accuracy,
    )
    assert chapter05.EXERCISES == tuple(c.exercise for c in checkers)


def test_the_course_s_loops_held_elsewhere_are_refused():
    from mnist_course import training

    def with_default(model, loader, optimizer, _f=training.train_epoch):
        return _f(model, loader, optimizer)[0]

    def the_checker_s_own(model, loader, optimizer):
        losses = chapter05._reference_epoch(model, list(loader), optimizer)
        return sum(losses) / len(losses)

    for learner in (with_default, functools.partial(training.train_epoch), the_checker_s_own):
        feedback = chapter05.check_train_one_epoch(learner)
        assert not feedback.ok and "write it yourself, without" in feedback.message, feedback

    def accuracy_with_default(model, loader, _e=training.evaluate):
        return _e(model, loader)[1]

    feedback = chapter05.check_accuracy(accuracy_with_default)
    assert not feedback.ok and "write it yourself, without" in feedback.message


def test_the_last_batch_size_named_is_the_one_checked():
    """After the notebook's first check, each check draws a last batch of another size."""
    chapter05.check_accuracy(accuracy())  # the first check: the notebook's case
    feedback = chapter05.check_accuracy(accuracy(per_batch=True))
    size = re.search(r"the last batch is smaller \((\d+) images, not 32\)", feedback.message)
    assert size, feedback.message
    seed = exercises.SEED + exercises._draws["accuracy"] - 1  # the seed that check drew
    _, loader, _ = chapter05.accuracy_case(seed)
    assert [len(y) for _, y in loader][-1] == int(size[1])


# ---------------------------------------------------------------------------------------------
# Feedback in Chinese
# ---------------------------------------------------------------------------------------------


def test_feedback_in_chinese(chinese, capsys):
    """The chapter's catalog speaks: a symptom with the mistake named, its hint, a success
    line, cmp's messages and a quiz explanation."""
    wrong = chapter05.check_backprop(wrong_backprop("b1", lambda g, *a: -g["b1"]), hint=2)
    assert not wrong.ok
    assert wrong.message.startswith("db1 与自动求导的结果不同（maxdiff ")
    assert "，而 dlogits, dW2, db2, dh, dz1, dW1 是一致的：它的符号反了。" in wrong.message
    assert "与 b2 的做法相同，只是换成第 1 层输出的梯度。" in wrong.message
    assert "differs from autograd" not in wrong.message and "wrong sign" not in wrong.message
    right = chapter05.check_accuracy(accuracy())
    assert right.ok
    assert right.message == "74 张图像中预测对了 50 张 = 0.6757，在评估模式下、不计算梯度。"
    w = torch.ones(2, requires_grad=True)
    assert np.isnan(chapter05.cmp("w", None, w))
    assert (
        capsys.readouterr().out
        == "w       | 没有自动求导的梯度：t.grad 是 None（请在 backward 之前调用 retain_grad()）\n"
    )
    marked = chapter05.check_quiz({2: 88})
    assert "最后一个批量有 88 张图像" in marked.lines[1], marked.lines[1]
