"""mnist_course.chapter05: the training-loop and accuracy checkers, and the quiz (no MNIST)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mnist_course import chapter05, exercises

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
    chapter05.reference_epoch(model, batches, optimizer)
    assert chapter05._mean_loss(model, batches) < before
    other, _, other_optimizer = chapter05._setup()
    chapter05.reference_epoch(other, batches, other_optimizer, zero_grad=False)
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
        (lambda m, loader: 50, "the number of correct predictions"),
        (lambda m, loader: 0.5, "whose accuracy is 0.6757"),
    ],
)
def test_each_accuracy_mistake_gets_its_own_message(learner, message):
    feedback = chapter05.check_accuracy(learner)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_known_accuracy_is_what_the_fake_model_gives():
    model, loader, expected = chapter05.accuracy_case()
    model.eval()
    with torch.no_grad():
        right = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    assert right / len(loader.dataset) == expected == 50 / 74
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
    assert "Hint:" not in first.message and "Hint: model.eval()" in second.message


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
