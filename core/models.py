"""Model factory: a small MLP (optional batch norm) and the lecture's toy network.

Every model is built deterministically from a seed, so two runs with the same lab setup start
from the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}

# The largest model the sidebar allows: every page's default diagnosis must finish within ~30 s on
# a 2-core laptop even with it (bench/pages.py --largest). 4 x 64 on digits is ~17k parameters.
MAX_HIDDEN_LAYERS = 4
MAX_HIDDEN_WIDTH = 64


@dataclass(frozen=True)
class ModelSpec:
    """What the sidebar picks: the shape of the MLP, not its input or output size."""

    hidden: tuple[int, ...] = (16, 16)  # units per hidden layer; () is a linear model
    activation: str = "tanh"  # one of ACTIVATIONS
    batch_norm: bool = False  # BatchNorm1d after each hidden linear layer, before the activation
    init_scale: float = 1.0  # multiplies PyTorch's default initial weights (small = saddle at 0)

    def describe(self) -> str:
        """One line for captions, e.g. 'MLP 16-16 tanh, batch norm'."""
        shape = "-".join(str(h) for h in self.hidden) or "linear"
        extra = ", batch norm" if self.batch_norm else ""
        scale = f", init x{self.init_scale:g}" if self.init_scale != 1.0 else ""
        return f"MLP {shape} {self.activation}{extra}{scale}"


def validate_spec(spec: ModelSpec) -> None:
    """Raise ValueError with a plain sentence when the spec cannot be built."""
    if spec.activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {spec.activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    if len(spec.hidden) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"At most {MAX_HIDDEN_LAYERS} hidden layers are supported.")
    if any(h < 1 or h > MAX_HIDDEN_WIDTH for h in spec.hidden):
        raise ValueError(f"Hidden layer sizes must be between 1 and {MAX_HIDDEN_WIDTH}.")
    if not spec.init_scale > 0:
        raise ValueError("The initial weight scale must be positive.")


def parse_hidden(text: str) -> tuple[int, ...]:
    """Parse '16, 16' or '32-8' into (16, 16) / (32, 8); raise ValueError with a plain sentence.

    >>> parse_hidden("32, 16")
    (32, 16)
    """
    parts = [p for p in text.replace("-", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"Hidden layers must be whole numbers separated by commas, not {text!r}.") from None
    validate_spec(ModelSpec(hidden=sizes))
    return sizes


def build_mlp(spec: ModelSpec, n_in: int, n_out: int, seed: int = 0) -> nn.Sequential:
    """Build an MLP n_in -> hidden... -> n_out, the same weights for the same seed.

    >>> model = build_mlp(ModelSpec(hidden=(8,)), n_in=2, n_out=3, seed=0)
    >>> sum(p.numel() for p in model.parameters())
    51
    """
    validate_spec(spec)
    # A private generator keeps the global torch RNG untouched, so building a model never
    # changes what other code draws.
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    width = n_in
    # nn.Linear draws a throwaway init from the global generator: fork it so nothing leaks.
    with torch.random.fork_rng(devices=[]):
        for h in spec.hidden:
            layers.append(nn.Linear(width, h))
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(ACTIVATIONS[spec.activation]())
            width = h
        layers.append(nn.Linear(width, n_out))
    model = nn.Sequential(*layers)
    _init_linear(model, gen, spec.init_scale)
    return model


def _init_linear(model: nn.Module, gen: torch.Generator, scale: float) -> None:
    """PyTorch's default Linear init (Kaiming-uniform, a=sqrt(5)), drawn from `gen`, times scale."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=gen).mul_(scale)
                layer.bias.uniform_(-bound, bound, generator=gen).mul_(scale)


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def toy_loss(theta: torch.Tensor, x: float = 1.0, y: float = 1.0) -> torch.Tensor:
    """The lecture's network y_hat = w1 * w2 * x with one sample: L = (y - w1 * w2 * x)^2.

    >>> float(toy_loss(torch.tensor([0.0, 0.0])))
    1.0
    """
    return (y - theta[0] * theta[1] * x) ** 2
