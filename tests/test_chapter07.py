"""Chapter 7's checkers and quiz: right answers pass, each typical mistake gets its message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import chapter07, data, exercises


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs), whatever ran before."""
    monkeypatch.setattr(exercises, "_draws", {})


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_many_processes.ipynb"
ODD_RETURNS = [None, (1, 2), "12", float("nan"), {"share": 1}, torch.zeros(2, 2), [[1], [2]]]


@pytest.fixture(autouse=True)
def fresh_hints():
    exercises._failures.clear()
    yield
    exercises._failures.clear()


# ----------------------------------------------------------------------------------- shard


def sliced_shard(batch, rank, world_size):
    """The chapter's answer: the rank-th of world_size equal slices."""
    share = len(batch) // world_size
    return batch[rank * share : (rank + 1) * share]


def loop_shard(batch, rank, world_size):
    """A loop over positions, returning a list."""
    share = len(batch) // world_size
    out = []
    for i in range(len(batch)):
        if rank * share <= i < (rank + 1) * share:
            out.append(int(batch[i]))
    return out


def numpy_shard(batch, rank, world_size):
    """NumPy's array_split of the whole shares, the remainder dropped."""
    keep = len(batch) - len(batch) % world_size
    return np.array_split(np.asarray(batch)[:keep], world_size)[rank]


def loader_shard(batch, rank, world_size):
    """The course's own loader: ``batch`` as an epoch's last (partial) batch."""
    size = world_size * -(-len(batch) // world_size)  # a multiple of world_size, >= len(batch)
    loader = data.TensorLoader(batch, batch, size, rank=rank, world_size=world_size)
    return next(iter(loader))[0]


@pytest.mark.parametrize(
    "shard",
    [
        sliced_shard,
        loop_shard,
        numpy_shard,
        lambda b, r, w: b[r::w][: len(b) // w],  # strided, like DistributedSampler
        lambda b, r, w: b.tolist()[r * (len(b) // w) : (r + 1) * (len(b) // w)],  # a list
        lambda b, r, w: np.asarray(b)[len(b) // w * (w - 1 - r) :][: len(b) // w],  # reversed
    ],
)
def test_right_shards_pass(shard):
    assert chapter07.check_shard(shard).ok


def test_the_reference_agrees_with_the_loader():
    for length, world in chapter07.SHARD_CASES:
        batch = torch.arange(100, 100 + length)
        for rank in range(world):
            expected = sliced_shard(batch, rank, world)
            assert torch.equal(loader_shard(batch, rank, world), expected)


@pytest.mark.parametrize(
    "message, shard",
    [
        ("shares have sizes [3, 3, 3, 1]", lambda b, r, w: torch.chunk(b, w)[r]),
        ("shares have sizes [3, 3, 2, 2]", lambda b, r, w: torch.tensor_split(b, w)[r]),
        ("goes to process 0 and to process 1", lambda b, r, w: b),
        ("you returned positions", lambda b, r, w: torch.arange(r * 2, r * 2 + len(b) // w)),
        ("4 of 8 entries are left out", lambda b, r, w: b[r * 2 : r * 2 + 2]),
        ("returned a slice", lambda b, r, w: slice(r, r + 1)),
        ("not whole", lambda b, r, w: b[: len(b) // w] + 0.5),
    ],
)
def test_each_shard_mistake_gets_its_message(message, shard):
    feedback = chapter07.check_shard(shard)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_library_is_refused_for_shard():
    def sampler(b, r, w):
        torch.utils.data.DistributedSampler(range(len(b)), num_replicas=w, rank=r)
        return sliced_shard(b, r, w)

    def loader(b, r, w):
        return loader_shard(b, r, w)

    for shard in (sampler, loader):
        feedback = chapter07.check_shard(shard)
        assert not feedback.ok and "write it yourself" in feedback.message, feedback.message


@pytest.mark.parametrize("value", ODD_RETURNS)
def test_odd_shard_returns_never_raise(value):
    feedback = chapter07.check_shard(lambda b, r, w: value)
    assert not feedback.ok


def test_broken_and_unwritten_shards_never_raise():
    def unwritten(b, r, w):
        raise NotImplementedError

    assert "not written yet" in chapter07.check_shard(unwritten).message
    assert "ZeroDivisionError" in chapter07.check_shard(lambda b, r, w: 1 / 0).message
    assert not chapter07.check_shard("shard").ok
    assert not chapter07.check_shard(lambda: None).ok


def test_shard_hint_grows():
    def chunks(b, r, w):
        return torch.chunk(b, w)[r]

    first = chapter07.check_shard(chunks).message
    second = chapter07.check_shard(chunks).message
    assert "Hint" not in first and "Hint: every process gets the same number" in second


def test_shard_inputs_are_fresh_for_each_check():
    seen = []

    def remember(b, r, w):
        seen.append(b.tolist())
        return sliced_shard(b, r, w)

    chapter07.check_shard(remember)
    first = list(seen)
    seen.clear()
    chapter07.check_shard(remember)
    assert seen != first  # a replay of the first check's shares would fail


def test_the_course_answer_is_not_exported_and_is_refused():
    assert not hasattr(chapter07, "reference_shard")
    assert not hasattr(chapter07, "reference_ddp_step")
    feedback = chapter07.check_shard(chapter07._reference_shard)
    assert "course's own answer" in feedback.message
    feedback = chapter07.check_shard(lambda b, r, w: chapter07._reference_shard(b, r, w))
    assert "course's own answer" in feedback.message


# ----------------------------------------------------------------------------------- ddp_step


def grads_of(replica, x, y):
    replica.zero_grad()
    F.cross_entropy(replica(x), y).backward()
    return [p.grad.clone() for p in replica.parameters()]


def update(replicas, grads_per_replica, lr):
    with torch.no_grad():
        for replica, grads in zip(replicas, grads_per_replica, strict=True):
            for p, g in zip(replica.parameters(), grads, strict=True):
                p -= lr * g


def own_gradient_each(replicas, shards, lr):
    grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
    update(replicas, grads, lr)
    return grads[0]


def summed(replicas, shards, lr):
    grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
    total = [sum(g) for g in zip(*grads, strict=True)]
    update(replicas, [total] * len(replicas), lr)
    return total


def no_zero_grad(replicas, shards, lr):
    grads = []
    for m, (x, y) in zip(replicas, shards, strict=True):
        F.cross_entropy(m(x), y).backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    mean = [sum(g) / len(g) for g in zip(*grads, strict=True)]
    update(replicas, [mean] * len(replicas), lr)
    return mean


def ddp_by_hand(replicas, shards, lr):
    """The chapter's answer: each replica's gradient, their mean, the same step everywhere."""
    grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
    mean = [torch.stack(g).mean(0) for g in zip(*grads, strict=True)]
    update(replicas, [mean] * len(replicas), lr)
    return mean


def ddp_loops_float64(replicas, shards, lr):
    """Plain loops, the mean taken in float64, returned as a tuple."""
    grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
    mean = []
    for k in range(len(grads[0])):
        total = torch.zeros_like(grads[0][k], dtype=torch.float64)
        for g in grads:
            total += g[k].double()
        mean.append(total / len(grads))
    with torch.no_grad():
        for m in replicas:
            for p, g in zip(m.parameters(), mean, strict=True):
                p.sub_((lr * g).float())
    return tuple(mean)


def ddp_grad_fields(replicas, shards, lr):
    """Averages into each replica's .grad, then steps with p.grad; returns NumPy arrays."""
    for m, (x, y) in zip(replicas, shards, strict=True):
        m.zero_grad()
        F.cross_entropy(m(x), y).backward()
    params = [list(m.parameters()) for m in replicas]
    mean = [sum(p.grad for p in group) / len(group) for group in zip(*params, strict=True)]
    with torch.no_grad():
        for group in params:
            for p, g in zip(group, mean, strict=True):
                p.grad.copy_(g)
                p.add_(p.grad, alpha=-lr)
    return [g.numpy() for g in mean]


def only_first_replica(replicas, shards, lr):
    mean = ddp_by_hand(replicas[:1] * 1, shards[:1], lr)
    return mean


def nan_everywhere(replicas, shards, lr):
    with torch.no_grad():
        for m in replicas:
            for p in m.parameters():
                p.fill_(float("nan"))
    return [torch.full_like(p, float("nan")) for p in replicas[0].parameters()]


def nan_gradients(replicas, shards, lr):
    mean = ddp_by_hand(replicas, shards, lr)
    return [torch.full_like(g, float("nan")) for g in mean]


def no_update(replicas, shards, lr):
    grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
    return [sum(g) / len(g) for g in zip(*grads, strict=True)]


def whole_batch(replicas, shards, lr):
    """Legitimate with equal shares: the whole batch's gradient is the same mean."""
    x, y = (torch.cat(t) for t in zip(*shards, strict=True))
    grads = grads_of(replicas[0], x, y)
    update(replicas, [grads] * len(replicas), lr)
    return grads


@pytest.mark.parametrize("step", [ddp_by_hand, ddp_loops_float64, ddp_grad_fields, whole_batch])
def test_right_ddp_steps_pass(step):
    assert chapter07.check_ddp_step(step).ok


def test_the_reference_step_is_sgd_on_the_whole_batch():
    world, share = 3, 4
    replicas = chapter07.toy_replicas(world)
    (single,) = chapter07.toy_replicas(1)
    shards = chapter07.toy_shards(world, share, seed=0)
    ddp_by_hand(replicas, shards, 0.5)
    optimizer = torch.optim.SGD(single.parameters(), lr=0.5)
    x, y = (torch.cat(t) for t in zip(*shards, strict=True))
    F.cross_entropy(single(x), y).backward()
    optimizer.step()
    for replica in replicas:
        for a, b in zip(replica.parameters(), single.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "message, step",
    [
        ("replicas hold different weights", own_gradient_each),
        ("3 times too large", summed),
        ("first step is right, the second is not", no_zero_grad),
        ("replica 1 still holds its old weights", only_first_replica),
        ("NaN or inf", nan_everywhere),
        ("NaN or inf", nan_gradients),
        ("weights did not change", no_update),
    ],
)
def test_each_ddp_mistake_gets_its_message(message, step):
    feedback = chapter07.check_ddp_step(step)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_library_is_refused_for_ddp_step():
    def with_sgd(replicas, shards, lr):
        torch.optim.SGD(replicas[0].parameters(), lr=lr)
        return ddp_by_hand(replicas, shards, lr)

    def with_ddp(replicas, shards, lr):
        torch.nn.parallel.DistributedDataParallel(replicas[0])

    def sgd_imported_inside(replicas, shards, lr):
        from torch.optim.sgd import SGD

        grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
        mean = [torch.stack(g).mean(0) for g in zip(*grads, strict=True)]
        for m in replicas:
            for p, g in zip(m.parameters(), mean, strict=True):
                p.grad = g.clone()
            SGD(m.parameters(), lr=lr).step()
        return mean

    def another_optimiser(replicas, shards, lr):
        grads = [grads_of(m, x, y) for m, (x, y) in zip(replicas, shards, strict=True)]
        mean = [torch.stack(g).mean(0) for g in zip(*grads, strict=True)]
        for m in replicas:
            for p, g in zip(m.parameters(), mean, strict=True):
                p.grad = g.clone()
            torch.optim.ASGD(m.parameters(), lr=lr, lambd=0, alpha=0, t0=1e9).step()
        return mean

    def the_course_answer(replicas, shards, lr):
        return chapter07._reference_ddp_step(replicas, shards, lr)

    for step in (with_sgd, with_ddp, sgd_imported_inside, another_optimiser, the_course_answer):
        feedback = chapter07.check_ddp_step(step)
        assert not feedback.ok and "write it yourself" in feedback.message, feedback.message


@pytest.mark.parametrize("value", ODD_RETURNS)
def test_odd_ddp_returns_never_raise(value):
    def step(replicas, shards, lr):
        ddp_by_hand(replicas, shards, lr)
        return value

    assert not chapter07.check_ddp_step(step).ok


def test_broken_ddp_steps_never_raise():
    assert "ZeroDivisionError" in chapter07.check_ddp_step(lambda *a: 1 / 0).message
    assert not chapter07.check_ddp_step(None).ok
    wrong_shapes = chapter07.check_ddp_step(lambda r, s, lr: [torch.zeros(1)] * 4)
    assert not wrong_shapes.ok and "shape" in wrong_shapes.message


# ----------------------------------------------------------------------------------- quiz, notebook


def test_quiz_key_is_computed_right():
    ids = torch.arange(128)
    loader = data.TensorLoader(ids, ids, 128, rank=1, world_size=4)
    assert len(next(iter(loader))[1]) == chapter07.QUIZ[1].answer


def test_quiz_marks_and_explains():
    right = {k: q.answer for k, q in chapter07.QUIZ.items()}
    result = chapter07.check_quiz(right)
    assert result.ok and result.right == len(chapter07.QUIZ) >= 3
    assert "not answered yet" in str(chapter07.check_quiz({}))
    assert not chapter07.check_quiz(None).ok


def test_notebook_uses_every_exercise_once_in_order():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    names = [
        c["metadata"]["exercise"] for c in nb["cells"] if "checker" in c["metadata"].get("tags", [])
    ]
    assert tuple(names) == chapter07.EXERCISES
    quiz_cells = [c for c in nb["cells"] if "quiz" in c["metadata"].get("tags", [])]
    assert len(quiz_cells) == 1 and "chapter07.check_quiz(answers)" in "".join(
        quiz_cells[0]["source"]
    )


# ----------------------------------------------------------------------------------- Chinese


def test_feedback_in_chinese(chinese):
    """The chapter's catalog speaks: a symptom, its hint, a success line and a quiz explanation."""
    wrong = chapter07.check_ddp_step(own_gradient_each, hint=2)
    assert not wrong.ok
    assert wrong.message.startswith("第 1 步之后，各副本的权重不同了：")
    assert "收集每个副本的 p.grad，逐个参数求平均，然后再更新。" in wrong.message
    assert "replicas hold different weights" not in wrong.message
    right = chapter07.check_shard(sliced_shard)
    assert right.ok
    assert right.message.startswith("在 5 组批量大小与进程数下，各份大小相等、互不重叠")
    marked = chapter07.check_quiz({2: "b"})
    assert "每个进程都收到 (g0 + g1) / 2" in marked.lines[1], marked.lines[1]
