"""mnist_course.chapter05: the training-loop and accuracy checkers, and the quiz (no MNIST)."""

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
        (epoch(zero_grad=False), "without zero_grad() the gradients of every earlier"),
        (epoch(step=False), "the optimiser never stepped"),
        (epoch(mode="eval"), "you called model.eval() in the training loop"),
        (epoch(mode=None), "the model ran in eval mode"),
        (epoch(order="between"), "the gradients were empty when it ran"),
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
    checkers = (chapter05.check_train_one_epoch, chapter05.check_accuracy)
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
