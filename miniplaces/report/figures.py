"""Matplotlib plumbing shared by every section: headless backend, demo watermark, compact encoding.

Figures are sized for reading (110 dpi). Photographs and overlays are stored as JPEG, which is a
third of their PNG size and which WeasyPrint embeds in the PDF as is; plots and filter grids (flat
colours, thin lines) stay PNG, where JPEG would be larger and blur them.
"""
from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

DPI = 110
DEMO_MARK = "DEMO: untrained weights"
JPEG_QUALITY = 85        # no visible artefacts on photographs at this resolution
JPEG_WORTH_IT = 0.6      # JPEG only when it is at most 60 % of the PNG: a plot gains nothing from it


def _watermark(fig: plt.Figure) -> None:
    fig.text(0.5, 0.5, DEMO_MARK, fontsize=22, color="red", alpha=0.35, ha="center", va="center",
             rotation=20, weight="bold", transform=fig.transFigure, zorder=1000)
    fig.text(0.995, 0.005, DEMO_MARK, fontsize=8, color="red", ha="right", va="bottom",
             transform=fig.transFigure, zorder=1000)


def png_bytes(fig: plt.Figure, demo: bool = False) -> bytes:
    """Render ``fig`` to PNG bytes; a figure of the demo model carries a visible watermark."""
    if demo:
        _watermark(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                metadata={"Software": None})  # no timestamps: same inputs, same bytes
    plt.close(fig)
    return buffer.getvalue()


def compact_bytes(fig: plt.Figure, demo: bool = False) -> tuple[bytes, str]:
    """(bytes, extension) of ``fig``: JPEG when that is much smaller than PNG (photographs), else PNG."""
    png = png_bytes(fig, demo)
    image = Image.open(io.BytesIO(png))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    jpeg = buffer.getvalue()
    return (jpeg, "jpg") if len(jpeg) <= JPEG_WORTH_IT * len(png) else (png, "png")


# ------------------------------------------------ drawing helpers shared by the scene sections (2 and 3)

DISPLAY_SIDE = 256         # scene images in figures are drawn at most this many pixels a side


def plain(text: str, n: int = 40) -> str:
    """User text for a matplotlib title: '$' would start mathtext (and can fail); long names are cut."""
    text = text if len(text) <= n else text[: n - 3] + "..."
    return text.replace("$", r"\$")


def display_image(image: Image.Image, side: int = DISPLAY_SIDE):
    """A PIL image as a float RGB array at most ``side`` pixels a side (figures need no more)."""
    import numpy as np
    from PIL import Image

    image = image.copy()
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def overlay(ax, rgb, heat=None, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "jet", alpha: float = 0.5):
    """Draw ``rgb`` with ``heat`` (same H x W) blended on top; matplotlib colour maps give RGB, never BGR."""
    ax.imshow(rgb, interpolation="bilinear")
    handle = None
    if heat is not None:
        handle = ax.imshow(heat, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return handle


def tint(ax, region, rgba: tuple[float, float, float, float]) -> None:
    """Paint the True pixels of ``region`` (H x W bool) in one translucent colour over what ``ax`` shows."""
    import numpy as np

    layer = np.zeros(region.shape + (4,), dtype=np.float32)
    layer[region] = rgba
    ax.imshow(layer, interpolation="nearest")


def colour_scale(vmin: float, vmax: float, cmap: str = "jet"):
    """An opaque colour scale for a colour bar (the overlays themselves are drawn half transparent)."""
    from matplotlib.colors import Normalize

    return plt.cm.ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap)


def mosaic(tiles: np.ndarray, gap: int = 1,
           fill: float = np.nan) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Tiles (rows, cols, h, w[, 3]) as one image with ``gap`` pixels of ``fill`` between them, and each
    tile's top-centre (x, y) in that image's pixel coordinates: one ``imshow`` instead of an axes per
    tile, which is what made filter grids take seconds to draw."""
    rows, cols, h, w = tiles.shape[:4]
    image = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *tiles.shape[4:]), fill, dtype=float)
    anchors = []
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + gap), c * (w + gap)
            image[y:y + h, x:x + w] = tiles[r, c]
            anchors.append((x + (w - 1) / 2, y - 0.5))
    return image, anchors


def bare(ax: plt.Axes) -> None:
    """No ticks, tick marks or frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
