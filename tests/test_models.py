"""Model construction: every norm, position and dropout kind; the pooling limit; parameter counts."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import trainables
from trainables import CNNConfig, MLPConfig
from trainables.models import InvalidModelConfig, build_cnn, build_model, check_buildable, count_parameters

NORM_TYPES = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "layer": nn.GroupNorm, "group": nn.GroupNorm}


def layer_types(model):
    return [type(m) for m in model.modules() if not isinstance(m, nn.Sequential)]


@pytest.mark.parametrize("norm", ["none", "batch", "instance", "layer", "group"])
@pytest.mark.parametrize("position", ["before_act", "after_act"])
def test_cnn_norm_kind_and_position(norm, position):
    cfg = CNNConfig(norm=norm, norm_position=position, norm_groups=4, dropout=0.0)
    model = build_model(cfg, (1, 8, 8), 10)
    types = layer_types(model)
    if norm == "none":
        assert not any(t in NORM_TYPES.values() for t in types)
    else:
        norm_at = types.index(NORM_TYPES[norm])
        relu_at = types.index(nn.ReLU)
        assert (norm_at < relu_at) == (position == "before_act")
        norm_layer = [m for m in model.modules() if isinstance(m, NORM_TYPES[norm])][0]
        if norm == "layer":
            assert norm_layer.num_groups == 1
        if norm == "group":
            assert norm_layer.num_groups == 4
    out = model(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("kind,cls", [("dropout", nn.Dropout), ("dropout2d", nn.Dropout2d)])
def test_cnn_dropout_kind_and_where_the_pool_runs(kind, cls):
    cfg = CNNConfig(dropout=0.3, dropout_kind=kind, norm="batch")
    textbook = layer_types(build_cnn(cfg, (1, 8, 8), 10, textbook_order=True))
    assert textbook[:5] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, cls, nn.MaxPool2d]
    model = build_model(cfg, (1, 8, 8), 10)
    # ReLU and Dropout2d commute with max pooling and run after it; element-wise dropout does not.
    expected = ([nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU, cls] if kind == "dropout2d"
                else [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, cls, nn.MaxPool2d])
    assert layer_types(model)[:5] == expected
    assert [m.p for m in model.modules() if isinstance(m, cls)] == [0.3, 0.3]


@pytest.mark.parametrize("norm,position", [("none", "before_act"), ("batch", "before_act"), ("batch", "after_act"),
                                           ("group", "before_act"), ("instance", "after_act")])
@pytest.mark.parametrize("kind,dropout", [("dropout2d", 0.4), ("dropout", 0.4), ("dropout2d", 0.0)])
@pytest.mark.parametrize("pool_every,size", [(1, 9), (2, 8)])
def test_pooling_early_is_the_textbook_function_bit_for_bit(norm, position, kind, dropout, pool_every, size):
    cfg = CNNConfig(norm=norm, norm_position=position, norm_groups=4, dropout=dropout, dropout_kind=kind,
                    layers=2, filters=8, fc_units=[16], pool_every=pool_every)
    shape = (1, size, size)
    torch.manual_seed(3)
    fast = build_cnn(cfg, shape, 10)
    torch.manual_seed(3)
    textbook = build_cnn(cfg, shape, 10, textbook_order=True)
    order = [type(m) for m in textbook]
    movable = any(order[i + 1] is nn.MaxPool2d and order[i] in (nn.ReLU, nn.Dropout2d) for i in range(len(order) - 1))
    assert ([type(m) for m in fast] != order) == movable
    assert fast.state_dict().keys() == textbook.state_dict().keys()  # checkpoints load either way
    x = torch.randn(6, *shape)
    for train in (True, False):
        outputs, grads = [], []
        for model in (fast, textbook):
            model.train(train)
            model.zero_grad()
            torch.manual_seed(11)  # the same dropout draws for both
            out = model(x)
            out.square().sum().backward()
            outputs.append(out)
            grads.append([p.grad.clone() for p in model.parameters()])
        assert torch.equal(outputs[0], outputs[1])
        assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_pooling_below_one_pixel_is_a_clear_error():
    with pytest.raises(InvalidModelConfig, match="pooling after block 4 of 4 would shrink the 8x8 input below 1x1"):
        build_model(CNNConfig(layers=4), (1, 8, 8), 10)
    assert build_model(CNNConfig(layers=4, pool_every=2), (1, 8, 8), 10) is not None
    assert build_model(CNNConfig(layers=8, pooling=False), (1, 8, 8), 10) is not None
    problems = trainables.get_trainable("cnn").check({"layers": 5})
    assert [p.key for p in problems] == ["layers"] and "below 1x1" in problems[0].allowed


def test_group_norm_that_does_not_divide_width():
    problems = trainables.get_trainable("cnn").check({"norm": "group", "norm_groups": 5})
    assert problems[0].key == "norm_groups" and "do not divide 32 channels" in problems[0].allowed


def test_width_growth_constant_and_doubling():
    constant = build_model(CNNConfig(layers=3, filters=16, width_growth=1), (1, 28, 28), 10)
    doubling = build_model(CNNConfig(layers=3, filters=32, width_growth=2), (1, 28, 28), 10)
    assert [m.out_channels for m in constant.modules() if isinstance(m, nn.Conv2d)] == [16, 16, 16]
    assert [m.out_channels for m in doubling.modules() if isinstance(m, nn.Conv2d)] == [32, 64, 128]


def test_parameter_count_matches_meta_build():
    cfg = CNNConfig(layers=3, filters=32, fc_units=[64], norm="none")
    real = count_parameters(build_model(cfg, (1, 28, 28), 10))
    assert check_buildable(cfg, (1, 28, 28), 10) == real
    # conv 1->32, 32->64, 64->128 (3x3 + bias), then 128*3*3 -> 64 -> 10
    expected = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 128 + 128) + (1152 * 64 + 64) + (64 * 10 + 10)
    assert real == expected


@pytest.mark.parametrize("limit", [10**9, 0], ids=["cpu", "meta"])
def test_shape_check_on_cpu_memory_and_on_meta_agree(limit, monkeypatch):
    import trainables.models as models

    monkeypatch.setattr(models, "_CPU_CHECK_LIMIT", limit)
    cfg = CNNConfig(layers=4, filters=8, norm="batch", pool_every=2)
    assert check_buildable(cfg, (1, 8, 8), 10) == count_parameters(build_model(cfg, (1, 8, 8), 10))
    with pytest.raises(InvalidModelConfig, match="below 1x1"):
        check_buildable(CNNConfig(layers=4), (1, 8, 8), 10)

    class Mismatch(nn.Module):  # builds, but its forward pass cannot run
        def forward(self, x):
            return nn.functional.linear(x.flatten(1), torch.zeros(10, 3, device=x.device))

    monkeypatch.setattr(models, "build_model", lambda *args: Mismatch())
    with pytest.raises(InvalidModelConfig, match="forward pass fails"):
        check_buildable(cfg, (1, 8, 8), 10)


def test_the_shape_check_imports_no_sympy():
    """A driver checks every config's model before anything trains; Module.to_empty on a meta model imports
    torch's Python decompositions and sympy (0.5-0.7 s here), which nothing else in the driver needs."""
    code = ("import sys\nfrom trainables import CNNConfig, MLPConfig\nfrom trainables.models import check_buildable\n"
            "check_buildable(CNNConfig(layers=2, filters=8, norm='batch'), (1, 8, 8), 10)\n"
            "check_buildable(MLPConfig(hidden=[16], norm='batch'), (64,), 10)\n"
            "print(sorted({'sympy', 'mpmath'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_mlp_progressive_dropout_norm_and_residual():
    cfg = MLPConfig(hidden=[64, 64, 32], dropout=[0.3, 0.2, 0.1], norm="layer", residual=True)
    model = build_model(cfg, (1, 8, 8), 10)
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.3, 0.2, 0.1]
    blocks = [m for m in model.modules() if isinstance(m, trainables.models.DenseBlock)]
    assert isinstance(blocks[1].skip, nn.Identity) and isinstance(blocks[2].skip, nn.Linear)
    assert all(isinstance(b.norm, nn.LayerNorm) for b in blocks)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)


def test_mlp_dropout_list_length_must_match():
    problems = trainables.get_trainable("mlp").check({"hidden": [32, 16], "dropout": [0.1]})
    assert "1 rates for 2 hidden layers" in problems[0].allowed


def test_unknown_key_and_value_get_did_you_mean():
    problems = {p.key: p for p in trainables.get_trainable("cnn").check({"dropuot": 0.1, "norm": "bach"})}
    assert "did you mean 'dropout'" in problems["dropuot"].allowed
    assert "did you mean 'batch'" in problems["norm"].allowed and problems["norm"].given == "bach"
