"""mnist_course.training on a small synthetic problem (no MNIST needed)."""

from __future__ import annotations

import os

import pytest
import torch

from mnist_course import data, models, training


def toy_loaders(n: int = 1024, seed: int = 0):
    """Images whose label is which of ten 28-pixel rows is bright: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    images[torch.arange(n), 0, labels * 2, :] += 3.0
    train = data.TensorLoader(images, labels, 32, shuffle=True, seed=seed)
    return train, data.TensorLoader(images, labels, 100)


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    model = models.MLP()
    train, test = toy_loaders()
    optimizer, scheduler = training.one_cycle_sgd(model, 0.1, 3, len(train))
    seen = []
    history = training.fit(model, train, test, optimizer, 3, scheduler, callback=seen.append)
    assert [h.epoch for h in history] == [1, 2, 3] and seen == history
    assert history[-1].val_acc > 0.95 and history[-1].train_loss < history[0].train_loss
    assert all(h.seconds > 0 and h.lr > 0 for h in history)
    loss, acc = training.evaluate(model, test)
    assert acc == pytest.approx(history[-1].val_acc) and loss == pytest.approx(history[-1].val_loss)


def test_callback_can_stop_early():
    model = models.MLP()
    train, test = toy_loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    history = training.fit(model, train, test, optimizer, 10, callback=lambda s: s.epoch == 2)
    assert len(history) == 2


def test_nan_loss_stops_with_epoch_and_learning_rate():
    model = models.MLP()
    train, _ = toy_loaders()
    train.images[5] = float("nan")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    with pytest.raises(training.TrainingDivergedError, match=r"epoch 4 at learning rate 0\.3"):
        training.train_epoch(model, train, optimizer, epoch=4)


def test_one_cycle_sgd_rejects_a_bad_rate():
    with pytest.raises(ValueError, match="positive"):
        training.one_cycle_sgd(models.MLP(), 0.0, 1, 10)


def test_confusion_matrix():
    m = training.confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_checkpoint_round_trip(tmp_path):
    model = models.CNN()
    path = training.save_checkpoint(model, tmp_path / "cnn.pt", epochs=3)
    assert os.listdir(tmp_path) == ["cnn.pt"]  # no temp file left
    fresh = models.CNN()
    meta = training.load_checkpoint(fresh, path)
    assert meta == {"architecture": "CNN", "epochs": 3}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_of_the_other_architecture(tmp_path):
    path = training.save_checkpoint(models.CNN(), tmp_path / "cnn.pt")
    with pytest.raises(
        training.CheckpointError, match="holds weights for CNN, but the model is MLP"
    ):
        training.load_checkpoint(models.MLP(), path)


def test_checkpoint_bad_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(training.CheckpointError, match="not a readable checkpoint"):
        training.load_checkpoint(models.MLP(), tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(training.CheckpointError, match="not a checkpoint saved by"):
        training.load_checkpoint(models.MLP(), tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        training.load_checkpoint(models.MLP(), tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.save_checkpoint(models.MLP(), tmp_path / "no" / "dir" / "m.pt")


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = training.save_checkpoint(models.MLP(), tmp_path / "m.pt")
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        training.save_checkpoint(models.MLP(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.pt"]


def schedule(cycle_momentum: bool, steps: int = 100):
    """(learning rate, momentum) before each of ``steps`` batches, read from the optimiser."""
    optimizer, scheduler = training.one_cycle_sgd(
        torch.nn.Linear(2, 2), 0.1, 1, steps, cycle_momentum=cycle_momentum
    )
    seen = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["momentum"]))
        optimizer.step()
        scheduler.step()
    return seen, optimizer


def test_one_cycle_sgd_cycles_momentum_against_the_rate():
    seen, optimizer = schedule(cycle_momentum=True)
    lrs, moms = zip(*seen, strict=True)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert peak == 29  # 30% of 100 steps: the last warm-up step
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[peak] == pytest.approx(0.1)
    assert lrs[-1] < 1e-4
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85)
    assert moms[-1] > 0.949 and min(moms) == pytest.approx(0.85)
    assert optimizer.param_groups[0]["nesterov"]


def test_one_cycle_sgd_can_keep_momentum_constant():
    seen, _ = schedule(cycle_momentum=False)
    assert {m for _, m in seen} == {0.9}
    assert max(lr for lr, _ in seen) == pytest.approx(0.1)
