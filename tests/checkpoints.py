"""Builders of small checkpoints in the official Places365 format, for the loader tests."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import torch
import torchvision


def resnet_state(arch: str = "resnet18", num_classes: int = 365, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return getattr(torchvision.models, arch)(num_classes=num_classes).state_dict()


def write_official(path: Path, state: dict[str, torch.Tensor], prefix: bool = True, legacy: bool = True,
                   arch_field: str = "resnet18") -> Path:
    """{'state_dict': {'module.conv1.weight': ...}, 'arch': ..., 'epoch': 90} as the CSAIL files are."""
    sd = {("module." + k if prefix else k): v for k, v in state.items()}
    torch.save({"epoch": 90, "arch": arch_field, "state_dict": sd, "best_prec1": 54.7}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


def write_python2_latin1(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """A legacy checkpoint holding a Python 2 byte string (SHORT_BINSTRING) that is not valid UTF-8.

    Loading it with torch's default encoding raises UnicodeDecodeError, as users report for the
    official files; ``encoding='latin1'`` reads it.
    """
    placeholder = "PLACEHOLDER_FOR_PY2_STR"
    buffer = io.BytesIO()
    write_official(buffer, state, arch_field=placeholder)  # type: ignore[arg-type]
    blob = buffer.getvalue()
    encoded = placeholder.encode()
    unicode_op = b"X" + struct.pack("<I", len(encoded)) + encoded
    assert blob.count(unicode_op) == 1
    py2_str = "r\xe9snet18".encode("latin1")
    path.write_bytes(blob.replace(unicode_op, b"U" + bytes([len(py2_str)]) + py2_str))
    return path


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: a stand-in for malicious code in a checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(1)}, "x": _Payload(str(marker))}, path)
    return path


def trained_looking_state(arch: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    """A random network with the marks training leaves: BatchNorm statistics that moved, and FC weights
    beyond PyTorch's default initialisation bound (as a trained classifier's are)."""
    state = resnet_state(arch, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(value.shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
    state["fc.weight"] = 0.1 * torch.randn(state["fc.weight"].shape, generator=generator)
    return state
