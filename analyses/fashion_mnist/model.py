"""The small CNN, built from a plain config so that a saved file can rebuild it.

VGG-style stages of (3x3 conv, BatchNorm, ReLU) x depth (one number, or one per stage) with 2x2
max-pooling after each stage's last convolution, then dropout and one linear layer on the flattened
feature map (global average pooling would throw away where on the garment a feature is, which separates
shirts from T-shirts). The pooling comes right after that convolution, before BatchNorm and ReLU: on a
CPU the element-wise layers at full resolution cost more than the convolutions of so small a net, and
pooling first quarters them. With ``flip_tta`` the network predicts, in eval mode, from the mean of the
logits of an image and of its mirror image. The network normalises its own input (buffers
``mean``/``std``), so a caller hands it images in [0, 1] and a saved file needs nothing else.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

INITS = ("default", "kaiming", "xavier", "orthogonal")
FORMAT = "miniplaces-fashion-mnist-model/1"


def plain_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-able data (tuples as lists), for results.json, cache keys and files."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


@dataclass(frozen=True)
class ModelConfig:
    """The architecture; TrialConfig takes these fields (and their defaults) from here by name."""

    channels: tuple[int, ...] = (32, 64, 128)   # one entry per stage; each stage halves the resolution
    depth: int | tuple[int, ...] = 1             # convolutions per stage: one number for all,
                                                 # or one per stage
    dropout: float = 0.0                         # before each classifier layer
    hidden: int = 0                              # units of a hidden fully connected layer (0: none)
    flip_tta: bool = False                       # in eval mode, average the logits of the image
                                                 # and its mirror
    init: str = "default"                        # PyTorch's default, or kaiming/xavier/orthogonal
    num_classes: int = 10
    mean: float = 0.2860                         # FashionMNIST training-set pixel mean and std
    std: float = 0.3530

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "channels" in kwargs:
            kwargs["channels"] = tuple(int(c) for c in kwargs["channels"])
        if isinstance(kwargs.get("depth"), list):
            kwargs["depth"] = tuple(int(n) for n in kwargs["depth"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    def stage_depths(self) -> tuple[int, ...]:
        if isinstance(self.depth, int):
            return (self.depth,) * len(self.channels)
        if len(self.depth) != len(self.channels):
            raise ValueError(f"depth {list(self.depth)} needs one entry per stage of channels "
                             f"{list(self.channels)}")
        return tuple(self.depth)


class SmallCNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, depth in zip(config.channels, config.stage_depths()):
            for i in range(depth):
                layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))
                if i == depth - 1:
                    layers.append(nn.MaxPool2d(2))
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        side = 28 >> len(config.channels)
        width = c_in * side * side
        head: list[nn.Module] = [nn.Flatten()]
        if config.hidden:  # cheap capacity on a CPU: a matrix product, not a convolution
            head += [nn.Dropout(config.dropout), nn.Linear(width, config.hidden, bias=False),
                     nn.BatchNorm1d(config.hidden), nn.ReLU(inplace=True)]
            width = config.hidden
        self.head = nn.Sequential(*head, nn.Dropout(config.dropout), nn.Linear(width, config.num_classes))
        self.register_buffer("mean", torch.tensor(config.mean), persistent=False)
        self.register_buffer("std", torch.tensor(config.std), persistent=False)
        init_weights(self, config.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> logits (B, num_classes)."""
        if self.config.flip_tta and not self.training:  # garments are left-right symmetric; one pass each way
            return (self.logits(x) + self.logits(x.flip(3))) / 2
        return self.logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - self.mean) / self.std))


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights; 'default' keeps PyTorch's kaiming-uniform(a=sqrt(5))."""
    if scheme not in INITS:
        raise ValueError(f"init {scheme!r}: use one of {', '.join(INITS)}")
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in",
                                        nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(config: ModelConfig) -> SmallCNN:
    return SmallCNN(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_file_bytes(model: SmallCNN, extra: dict[str, Any] | None = None) -> bytes:
    """The model file's content: the architecture config and the weights (plus ``extra``), which
    ``load_model`` reads back. The caller writes it (atomically)."""
    blob = {"format": FORMAT, "config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **(extra or {})}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    return buffer.getvalue()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> SmallCNN:
    """``model = load_model("reports/fashion_mnist_model.pt")``: rebuild the network, load weights, eval
    mode."""
    blob = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    model = build_model(ModelConfig.from_dict(blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def count_macs(config: ModelConfig) -> int:
    """Multiply-accumulates of one image's forward pass through ``logits`` (one pass: flip TTA doubles
    evaluation, not training), exact for the convolutions and linear layers, which do nearly all the
    work; BatchNorm, ReLU and pooling are left out. A machine-independent measure of a model's cost."""
    macs, c_in, side = 0, 1, 28
    for c_out, depth in zip(config.channels, config.stage_depths()):
        for _ in range(depth):
            macs += side * side * c_out * c_in * 3 * 3   # 3 x 3 convolution, padding 1: same size out
            c_in = c_out
        side //= 2                                       # 2 x 2 max-pooling after the stage
    width = c_in * side * side
    for units in ([config.hidden] if config.hidden else []) + [config.num_classes]:
        macs += width * units
        width = units
    return macs
