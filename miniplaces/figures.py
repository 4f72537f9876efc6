"""Matplotlib plumbing shared by every section: headless backend, demo watermark, atomic PNG save.

Figures are sized for reading (about 150 dpi, a few hundred kB at most) so the PDF stays small.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import atomic  # noqa: E402

DPI = 110
DEMO_MARK = "DEMO: untrained weights"


def png_bytes(fig: "plt.Figure", demo: bool = False) -> bytes:
    """Render ``fig`` to PNG bytes; a figure of the demo model carries a visible watermark."""
    if demo:
        fig.text(0.5, 0.5, DEMO_MARK, fontsize=22, color="red", alpha=0.35, ha="center", va="center",
                 rotation=20, weight="bold", transform=fig.transFigure, zorder=1000)
        fig.text(0.995, 0.005, DEMO_MARK, fontsize=8, color="red", ha="right", va="bottom",
                 transform=fig.transFigure, zorder=1000)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                metadata={"Software": None})  # no timestamps: same inputs, same bytes
    plt.close(fig)
    return buffer.getvalue()


def save(fig: "plt.Figure", path: Path, demo: bool = False) -> Path:
    """Write ``fig`` to ``path`` as PNG (atomically)."""
    atomic.write_bytes(path, png_bytes(fig, demo))
    return path
