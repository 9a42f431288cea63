import pytest
import torch

from emnist_draw.model import CNN, n_parameters


def test_seed_preset_is_the_original_demo_layer_for_layer():
    model = CNN(47, "seed")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "encoder.0.weight": (32, 1, 3, 3), "encoder.1.weight": (32,),
        "encoder.5.weight": (64, 32, 5, 5), "encoder.6.weight": (64,),
        "encoder.9.weight": (128, 64, 7, 7), "encoder.10.weight": (128,),
        "decoder.0.weight": (128, 64, 3, 3), "decoder.1.weight": (64,),
        "classifier.1.weight": (6272, 12544), "classifier.4.weight": (3136, 6272),
        "classifier.7.weight": (47, 3136),
    }
    assert [type(m).__name__ for m in model.encoder] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Dropout",
        "Conv2d", "BatchNorm2d", "ReLU", "Dropout", "Conv2d", "BatchNorm2d", "ReLU", "Dropout"]
    assert n_parameters(model) == 99_029_295  # the "~98M" of the original demo


@pytest.mark.parametrize("preset", ["small", "medium"])
def test_shippable_presets_shape_and_size(preset):
    model = CNN(47, preset).eval()
    assert [name for name, _ in model.named_children()] == ["encoder", "decoder", "classifier"]
    assert n_parameters(model) < 1.25e6  # < 5 MB of float32 weights
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 47)


def test_n_classes_and_unknown_preset():
    assert CNN(10).classifier[-1].out_features == 10
    try:
        CNN(47, "huge")
    except ValueError as e:
        assert "small" in str(e) and "seed" in str(e)
    else:
        raise AssertionError("an unknown preset was accepted")
