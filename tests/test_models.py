"""mnist_course.models: shapes, parameter counts and the registry."""

from __future__ import annotations

import pytest
import torch

from mnist_course import models


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_models_map_a_batch_to_ten_logits(name):
    model = models.build_model(name)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_mlp_is_the_notes_network():
    mlp = models.MLP()
    sizes = [
        (layer.in_features, layer.out_features)
        for layer in (mlp.l1, mlp.l2, mlp.l3, mlp.l4, mlp.l5)
    ]
    assert sizes == [(784, 512), (512, 256), (256, 128), (128, 64), (64, 10)]
    expected = sum(i * o + o for i, o in sizes)
    assert models.count_parameters(mlp) == expected == 575_050


def test_cnn_is_small():
    assert models.count_parameters(models.CNN()) < 20_000


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"\['cnn', 'mlp'\]"):
        models.build_model("resnet")


def test_mlp_parameters_have_the_lecture_s_names():
    """The lecture's `MNIST_Model` (chapter 5) and MLP name their layers alike, so weights move across."""
    names = [name for name, _ in models.MLP().named_parameters()]
    assert names == [f"l{i}.{kind}" for i in range(1, 6) for kind in ("weight", "bias")]
