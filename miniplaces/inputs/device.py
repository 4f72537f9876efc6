"""Which torch device a run computes on: its own home, so that choosing one imports torch and nothing
else (Problem 4 does not need torchvision or the Places model code)."""
from __future__ import annotations

import torch

from miniplaces.errors import UserError


def pick_device(name: str) -> torch.device:
    """``--device auto|cpu|cuda``: auto takes CUDA when there is one; asking for a missing CUDA is exit 2."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; "
                        "use --device cpu or auto")
    return torch.device(name)
