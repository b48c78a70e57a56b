"""The networks of the course: the lecture notes' MLP (chapter 5) and a small CNN (chapter 6)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """The lecture notes' network: 784-512-256-128-64-10, ReLU between layers (chapter 5).

    Chapter 5 writes the same class out as the lecture does (``class MNIST_Model``) and
    checks that it equals this one; the command line and chapter 6 use this one.

    It outputs raw logits: the softmax is inside ``CrossEntropyLoss`` (chapter 2).
    """

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(784, 512)
        self.l2 = nn.Linear(512, 256)
        self.l3 = nn.Linear(256, 128)
        self.l4 = nn.Linear(128, 64)
        self.l5 = nn.Linear(64, 10)
        self.activate = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 784)  # one image: 1 x 28 x 28 = 784 inputs
        x = self.activate(self.l1(x))
        x = self.activate(self.l2(x))
        x = self.activate(self.l3(x))
        x = self.activate(self.l4(x))
        return self.l5(x)


class CNN(nn.Module):
    """A small LeNet-style CNN with batch norm: 99% on MNIST in a minute on a CPU (chapter 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5),  # 28x28 -> 24x24
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 12x12
            nn.Conv2d(16, 32, kernel_size=5),  # -> 8x8
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 4x4
        )
        self.classifier = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN}


def build_model(name: str) -> nn.Module:
    """A new, randomly initialised model by name: ``"mlp"`` or ``"cnn"``."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (chapters 5 and 6)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
