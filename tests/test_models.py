import pytest
import torch
from torch import nn

from core.models import ModelSpec, build_mlp, n_params, parse_hidden, toy_loss


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_mlp(ModelSpec(hidden=(8, 4)), 3, 2, seed=7)
    after = torch.rand(1)
    b = build_mlp(ModelSpec(hidden=(8, 4)), 3, 2, seed=7)
    c = build_mlp(ModelSpec(hidden=(8, 4)), 3, 2, seed=8)
    assert torch.equal(before, after)  # building a model drew nothing from the global generator
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_shape_parameter_count_and_batch_norm():
    model = build_mlp(ModelSpec(hidden=(16, 16), batch_norm=True), 4, 3, seed=0)
    # 4*16+16 + 2*16 (bn) + 16*16+16 + 2*16 (bn) + 16*3+3
    assert n_params(model) == 80 + 32 + 272 + 32 + 51
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model) == 2
    assert model(torch.zeros(5, 4)).shape == (5, 3)
    linear = build_mlp(ModelSpec(hidden=()), 4, 1)
    assert n_params(linear) == 5


def test_init_scale_multiplies_default_init():
    base = build_mlp(ModelSpec(hidden=(8,)), 2, 1, seed=3)
    small = build_mlp(ModelSpec(hidden=(8,), init_scale=0.01), 2, 1, seed=3)
    for p, q in zip(base.parameters(), small.parameters()):
        torch.testing.assert_close(q, p * 0.01)
    bound = 1 / 2**0.5
    assert base[0].weight.abs().max() <= bound


@pytest.mark.parametrize("text,expected", [("16, 16", (16, 16)), ("32-8", (32, 8)), ("", ()), (" 4 ", (4,))])
def test_parse_hidden(text, expected):
    assert parse_hidden(text) == expected


@pytest.mark.parametrize("text", ["a, 3", "0", "1,2,3,4,5", "100000"])
def test_parse_hidden_rejects(text):
    with pytest.raises(ValueError):
        parse_hidden(text)


def test_toy_loss_matches_closed_form():
    theta = torch.tensor([0.3, -1.7], dtype=torch.float64)
    assert float(toy_loss(theta)) == pytest.approx((1 - 0.3 * -1.7) ** 2, rel=1e-15)
    assert float(toy_loss(theta, x=2.0, y=0.5)) == pytest.approx((0.5 - 0.3 * -1.7 * 2) ** 2, rel=1e-15)
