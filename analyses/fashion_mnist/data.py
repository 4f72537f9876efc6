"""FashionMNIST as in-memory tensors: find and verify the IDX files, split, augment whole batches.

The whole data set is 55 MB as float32, so it lives in memory as one tensor and every batch is
an index into it. Augmentation runs on the batch tensor (one gather, one ``where``) instead of on
60 000 PIL images per epoch, which is what makes a CPU epoch take seconds instead of a minute.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("miniplaces")

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
COUNTS = {"train": 60_000, "test": 10_000}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
VAL_SPLIT_SEED = 20240  # fixed forever: changing --seed must not move images between train and val
AUGMENT_OPS = ("flip", "crop", "erase")
MAX_IDX_BYTES = 64 << 20   # the largest FashionMNIST file holds 47 MB of pixels
MAX_IDX_DIMS = 3           # (n,) labels or (n, rows, cols) images


class DataError(Exception):
    """The IDX files are missing or malformed (the message is one line for the user)."""


@dataclass
class FashionData:
    """Images as float32 (N, 1, 28, 28) in [0, 1], labels as int64 (N,); ``sha256`` names the files' bytes."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    sha256: str
    source: str


@dataclass
class Split:
    """The tensors one trial trains and validates on (``val_x`` empty for a final model on all 60k)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(data_dir: Path | None, cache_dir: Path | None, offline: bool = False) -> Path:
    """The first folder holding all four IDX files: ``data_dir``, the Debian package, then a download.

    A ``data_dir`` the user named is used or refused (DataError), never passed over for another copy.
    The download goes through torchvision into ``cache_dir/fashion-mnist`` (its raw folder is then
    just another candidate). Raises DataError with a one-line reason when nothing is usable.
    """
    if data_dir:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"--data-dir {data_dir}: no such folder")
        missing = [stem for stem in FILES.values() if not _find(folder, stem)]
        if missing:
            raise DataError(f"--data-dir {data_dir}: missing FashionMNIST IDX file(s) "
                            f"{', '.join(missing)}[.gz]")
        return folder
    tried = []
    candidates = [SYSTEM_DIR]
    if cache_dir:
        candidates.append(Path(cache_dir) / "fashion-mnist" / "FashionMNIST" / "raw")
    for folder in candidates:
        if all(_find(folder, stem) for stem in FILES.values()):
            return folder
        tried.append(str(folder))
    if cache_dir and not offline:
        from torchvision.datasets import FashionMNIST

        root = Path(cache_dir) / "fashion-mnist"
        try:
            for train in (True, False):
                FashionMNIST(str(root), train=train, download=True)
            return root / "FashionMNIST" / "raw"
        except Exception as exc:  # noqa: BLE001 - network errors come in many types
            tried.append(f"download ({type(exc).__name__}: {exc})".splitlines()[0])
    raise DataError("no usable FashionMNIST data: tried " + "; ".join(tried)
                    + ". Install the Debian package dataset-fashion-mnist or pass --data-dir")


def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file (gzip or raw) as a uint8 tensor with the shape its header declares.

    Bounded: the header's dimensions give the size, which may not exceed MAX_IDX_BYTES, and the
    stream is decompressed into a buffer of exactly that size, so a gzip bomb or a file longer
    than its header says is refused after reading one byte more than the header promised."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08:
                raise DataError(f"{path}: not an unsigned-byte IDX file")
            ndim = head[3]
            if not 1 <= ndim <= MAX_IDX_DIMS:
                raise DataError(f"{path}: the header declares {ndim} dimensions; IDX image and label files "
                                f"have 1 to {MAX_IDX_DIMS}")
            raw_dims = handle.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: header cut short (truncated)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            size = math.prod(dims)
            if size > MAX_IDX_BYTES:
                shape = " x ".join(map(str, dims))
                raise DataError(f"{path}: the header declares {shape} = {size} bytes, more than any "
                                f"FashionMNIST file ({MAX_IDX_BYTES} at most)")
            body = bytearray(size)
            got = _read_into(handle, memoryview(body))
            if got < size:
                raise DataError(f"{path}: {got} data bytes, the header says {size} (truncated)")
            if handle.read(1):
                raise DataError(f"{path}: longer than the {size} data bytes its header declares")
    except (OSError, EOFError, zlib.error) as exc:   # a corrupt gzip stream raises any of these
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not size:
        return torch.zeros(dims, dtype=torch.uint8)
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


def _read_into(handle, view: memoryview) -> int:
    """Fill ``view`` from ``handle``; the number of bytes read (fewer at the end of the file)."""
    got = 0
    while got < len(view):
        n = handle.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def load(folder: Path) -> FashionData:
    """Read and verify the four files: counts, 28 x 28 images, labels 0-9 with every class present."""
    h = hashlib.sha256()
    arrays = {}
    for key, stem in FILES.items():
        path = _find(folder, stem)
        if path is None:
            raise DataError(f"{folder}: {stem}[.gz] missing")
        arrays[key] = read_idx(path)
        h.update(arrays[key].numpy().tobytes())
    for part, n in COUNTS.items():
        x, y = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if tuple(x.shape) != (n, 28, 28) or tuple(y.shape) != (n,):
            raise DataError(f"{folder}: {part} images {tuple(x.shape)} / labels {tuple(y.shape)}, "
                            f"expected ({n}, 28, 28) / ({n},)")
        if int(y.max()) > 9 or len(torch.unique(y)) != 10:
            raise DataError(f"{folder}: {part} labels are not the 10 classes 0-9")

    def images(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).div_(255).unsqueeze(1).contiguous()

    return FashionData(images(arrays["train_images"]), arrays["train_labels"].long(),
                       images(arrays["test_images"]), arrays["test_labels"].long(), h.hexdigest(),
                       str(folder))


def split(data: FashionData, val_size: int, train_subset: int = 0, full_train: bool = False) -> Split:
    """A fixed train/validation split of the 60k training images (the test set is never touched here).

    The permutation depends on VAL_SPLIT_SEED only, so every trial of every run validates on the
    same images. ``train_subset`` keeps the first n training images of the permutation (smoke runs);
    ``full_train`` trains on all 60k (or the subset plus the validation images) for the final model.
    """
    n = len(data.train_y)
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in 1..{n - 1}, got {val_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_subset:
        train_idx = train_idx[:train_subset]
    if full_train:
        train_idx, val_idx = torch.cat([train_idx, val_idx]), val_idx[:0]
    return Split(data.train_x[train_idx], data.train_y[train_idx], data.train_x[val_idx],
                 data.train_y[val_idx])


def parse_augment(spec: str) -> tuple[str, ...]:
    """'flip+crop' -> ('flip', 'crop'); 'none' -> (). Raises ValueError naming an unknown op."""
    if spec == "none":
        return ()
    ops = tuple(spec.split("+"))
    bad = [op for op in ops if op not in AUGMENT_OPS]
    if bad or not ops:
        raise ValueError(f"augment {spec!r}: unknown op {bad[0] if bad else ''!r} (use 'none' or "
                         f"'+'-joined {', '.join(AUGMENT_OPS)})")
    return ops


def augment(x: torch.Tensor, ops: tuple[str, ...], generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Augment a whole batch (B, 1, H, W) at once with per-image random draws.

    flip: horizontal flip of half the images; crop: shift by up to ``pad`` pixels (zero padding, as
    RandomCrop(28, padding=2)); erase: blank one random 8 x 8 square per image (cutout) half the time.
    """
    b, _, h, w = x.shape
    if "flip" in ops:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    if "crop" in ops:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        rows = (dy.view(b, 1) + torch.arange(h)).view(b, 1, h, 1)
        cols = (dx.view(b, 1) + torch.arange(w)).view(b, 1, 1, w)
        x = padded.gather(2, rows.expand(b, 1, h, w + 2 * pad)).gather(3, cols.expand(b, 1, h, w))
    if "erase" in ops:
        size = 8
        cy = torch.randint(0, h, (b, 1, 1, 1), generator=generator)
        cx = torch.randint(0, w, (b, 1, 1, 1), generator=generator)
        on = (torch.rand(b, 1, 1, 1, generator=generator) < 0.5)
        ys, xs = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
        box = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2) & on
        x = x.masked_fill(box, 0.0)
    return x


def batches(n: int, batch_size: int, generator: torch.Generator | None, drop_last: bool = False):
    """Index tensors of one epoch: shuffled when a generator is given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]
