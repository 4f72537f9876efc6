"""Provisioning of the Places365 ResNet: find, download, verify and load the official checkpoint.

Order: ``--weights PATH``; the cache (torch.hub's checkpoint dir, then our XDG cache dir); a
download of the official file (or of a mirror's: ``MINIPLACES_WEIGHTS_URL``,
``MINIPLACES_CATEGORIES_URL``). When none can be had the caller decides between a demo model
(untrained, marked everywhere) and exit code 2 (``--strict``). A file the user named is never
replaced by the demo: if it cannot be loaded that is always a UserError.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from miniplaces.cache import file_sha256
from miniplaces.errors import UserError
from miniplaces.inputs import bounded
from miniplaces.inputs.device import pick_device

log = logging.getLogger(__name__)

NUM_CLASSES = 365
WEIGHTS_URL = "http://places2.csail.mit.edu/models_places365/{arch}_places365.pth.tar"
CATEGORIES_URL = "https://raw.githubusercontent.com/CSAILVision/places365/master/categories_places365.txt"
CATEGORIES_FILE = "categories_places365.txt"
DOWNLOAD_TIMEOUT_S = 60
# Environment variables that point the downloads elsewhere (a campus mirror, a test server) and set
# the timeout: the seconds a download may go without receiving a byte.
WEIGHTS_URL_ENV = "MINIPLACES_WEIGHTS_URL"        # may contain {arch}
CATEGORIES_URL_ENV = "MINIPLACES_CATEGORIES_URL"
TIMEOUT_ENV = "MINIPLACES_DOWNLOAD_TIMEOUT"
# The input normalisation (MEAN, STD) lives with the model input code: analyses/feature_maps.py.


@dataclass
class PlacesModel:
    """The loaded network and everything the report must say about where it came from."""

    model: torch.nn.Module
    arch: str
    weights: str          # path of the checkpoint, or "demo (untrained)"
    sha256: str           # of the checkpoint file; for the demo, of its state_dict tensors
    demo: bool
    demo_reason: str
    labels: list[str]
    categories_source: str
    device: torch.device

    def to_json(self) -> dict:
        from miniplaces.inputs.checkpoint import provenance

        return {"arch": self.arch, "weights": self.weights, "sha256": self.sha256, "demo": self.demo,
                "demo_reason": self.demo_reason, "categories": self.categories_source,
                "num_classes": NUM_CLASSES, "device": str(self.device),
                "provenance": provenance(self.arch, self.sha256, self.demo)}


def weights_filename(arch: str) -> str:
    return f"{arch}_places365.pth.tar"


def cached_weight_locations(arch: str, cache_dir: Path) -> list[Path]:
    return [Path(torch.hub.get_dir()) / "checkpoints" / weights_filename(arch),
            cache_dir / "weights" / weights_filename(arch)]


def weights_url(arch: str) -> str:
    return os.environ.get(WEIGHTS_URL_ENV, WEIGHTS_URL).replace("{arch}", arch)


def categories_url() -> str:
    return os.environ.get(CATEGORIES_URL_ENV, CATEGORIES_URL)


def download_timeout() -> float:
    value = os.environ.get(TIMEOUT_ENV, str(DOWNLOAD_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not 0 < seconds < math.inf:  # NaN and inf too: a socket cannot wait forever
        raise UserError(f"{TIMEOUT_ENV}={value!r}: give the timeout in seconds, e.g. 60")
    return seconds


class DownloadError(Exception):
    """A download that did not deliver a complete, usable file (the message says why, in one line)."""


def weights_bytes_limit(arch: str) -> int:
    """The most bytes a download of ``arch``'s official checkpoint may have: its float32 tensors
    (resnet18: 45.5 MB, resnet50: 97.2 MB, computed from the architecture) plus 10 % and 1 MiB for
    the pickle's keys and framing. An endless or oversized stream stops there."""
    with torch.device("meta"):   # shapes only, no memory
        model = getattr(torchvision.models, arch)(num_classes=NUM_CLASSES)
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return int(tensors * 1.1) + (1 << 20)


def _local_file_problem(url: str) -> str | None:
    """Why a file:// URL cannot be downloaded (a device never ends, a FIFO blocks the open); None: fine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    path = Path(urllib.request.url2pathname(parts.path))
    return None if path.is_file() else f"{path} is not a regular file"


def download(url: str, dst: Path, progress: bool = True,
             check: Callable[[Path], object] | None = None, *, limit: int) -> None:
    """Stream ``url`` into ``dst`` with a progress bar; ``dst`` appears only complete and checked.

    Refused, with nothing left in ``dst``'s folder: an HTTP error, an HTML page (a portal's or proxy's
    error page), more than ``limit`` bytes (announced or sent: an endless stream, a file:// device),
    fewer bytes than Content-Length (a cut connection; urllib reads that as a normal end), no byte
    for the timeout, and a file that ``check`` rejects (it raises).
    """
    from tqdm import tqdm

    timeout = download_timeout()
    if problem := _local_file_problem(url):
        raise DownloadError(problem)
    too_large = f"more than {limit / 1e6:.1f} MB, larger than the official file"
    dst.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "miniplaces-report"})
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(request, timeout=timeout) as response:
            if response.headers.get_content_type() == "text/html":
                raise DownloadError("the server sent an HTML page, not the file")
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > limit:
                raise DownloadError(f"the server announced {expected} bytes, {too_large}")
            received = 0
            with tqdm(total=expected, disable=not progress, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dst.name) as bar:
                while chunk := response.read(1 << 16):
                    received += len(chunk)
                    if received > limit:
                        raise DownloadError(f"the server sent {too_large}")
                    handle.write(chunk)
                    bar.update(len(chunk))
            if expected is not None and received != expected:
                raise DownloadError(f"the connection closed after {received} of {expected} bytes")
        if check is not None:
            try:
                check(Path(tmp))
            except UserError as exc:
                raise DownloadError(str(exc).replace(tmp, "the downloaded file")) from None
        os.replace(tmp, dst)
    except TimeoutError:
        raise DownloadError(f"no data for {timeout:g} s (timeout; {TIMEOUT_ENV} sets it)") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_weights(weights: Path | None, arch: str, cache_dir: Path, offline: bool,
                    progress: bool = True) -> tuple[Path | None, str]:
    """Return (path, "") or (None, why no weights could be had)."""
    if weights is not None:
        if not Path(weights).is_file():
            raise UserError(f"--weights {weights}: no such file; give the path of {weights_filename(arch)}")
        return Path(weights), ""
    for candidate in cached_weight_locations(arch, cache_dir):
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate, ""
    if offline:
        return None, "no --weights given, none in the cache, and --offline forbids downloading"
    dst = cached_weight_locations(arch, cache_dir)[0]
    url = weights_url(arch)
    try:
        download(url, dst, progress, check=read_state_dict, limit=weights_bytes_limit(arch))
    except UserError:  # a bad MINIPLACES_DOWNLOAD_TIMEOUT
        raise
    except DownloadError as exc:
        return None, f"could not download {url} ({exc})"
    except Exception as exc:  # no network, HTTP error, timeout
        return None, f"could not download {url} ({type(exc).__name__}: {exc})"
    return dst, ""


def _unpickle(path: Path) -> object:
    """torch.load with weights_only=True; retries with latin1 for checkpoints pickled by Python 2."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:
        with warnings.catch_warnings():  # torch warns that pickle args are ignored, yet honours encoding
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint into a plain state_dict without the DataParallel ``module.`` prefix."""
    redownload = "delete it and download the official *_places365.pth.tar again from the CSAIL Places2 site"
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: the file is empty; {redownload}")
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip()
    if head[:1] == b"<" or head[:9].lower().startswith(b"<!doctype"):
        raise UserError(f"{path}: this is an HTML page, not a checkpoint (a failed download?); {redownload}")
    try:
        obj = _unpickle(path)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise UserError(f"{path}: refused to load: the file contains objects other than tensors "
                            "(possibly code); only plain checkpoints are loaded "
                            "(weights_only=True)") from None
        raise UserError(f"{path}: not a readable checkpoint ({_first_line(exc)}); {redownload}") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, AttributeError,
            UnicodeDecodeError, IndexError, TypeError, KeyError) as exc:
        raise UserError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc)}); "
                        f"{redownload}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor)
                                                              for v in state.values()):
        raise UserError(f"{path}: no state_dict of tensors inside; expected the official format "
                        "{{'state_dict': {{'module.conv1.weight': ...}}}}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def build_model(arch: str, state_dict: dict[str, torch.Tensor] | None, source: str = "") -> torch.nn.Module:
    """torchvision's ResNet with 365 outputs, loaded from ``state_dict`` (or untrained when None)."""
    model = getattr(torchvision.models, arch)(num_classes=NUM_CLASSES)
    if state_dict is not None:
        expected = model.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            guess = _guess_arch(state_dict)
            hint = f"it looks like {guess}: pass --arch {guess}" if guess and guess != arch else \
                "is it a Places365 ResNet checkpoint?"
            raise UserError(f"{source}: does not match {arch} ({len(missing)} missing, {len(unexpected)} "
                            f"unexpected keys, e.g. {(missing or unexpected)[0]}); {hint}")
        wrong = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state_dict.items()
                 if tuple(v.shape) != tuple(expected[k].shape)]
        if wrong:
            key, got, want = wrong[0]
            what = "a different number of classes" if key.startswith("fc.") else "a different architecture"
            raise UserError(f"{source}: {key} has shape {got}, {arch} with {NUM_CLASSES} classes needs "
                            f"{want} ({what}); use the official {weights_filename(arch)}")
        model.load_state_dict(state_dict)
    return model.eval()


def _guess_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    if "layer1.0.conv3.weight" in state_dict:
        return "resnet50"
    if "layer1.0.conv2.weight" in state_dict and "layer1.0.conv3.weight" not in state_dict:
        return "resnet18"
    return None


def state_dict_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_labels(categories: Path | None, weights: Path | None, cache_dir: Path, offline: bool,
                progress: bool = True) -> tuple[list[str], str]:
    """Class names from categories_places365.txt (lines like ``/a/airfield 0``); indices when absent."""
    candidates = [categories] if categories else []
    if weights is not None:
        candidates.append(Path(weights).with_name(CATEGORIES_FILE))
    cached = cache_dir / "weights" / CATEGORIES_FILE
    candidates.append(cached)
    if categories is not None and not Path(categories).exists():
        raise UserError(f"--categories {categories}: no such file")
    for path in candidates:   # the named file is read whatever it is (the reader refuses a pipe or device)
        if path == categories or Path(path).is_file():
            return parse_categories(Path(path)), str(path)
    if not offline:
        url = categories_url()
        try:
            download(url, cached, progress, check=parse_categories, limit=bounded.CATEGORIES_BYTES)
            return parse_categories(cached), str(cached)
        except Exception as exc:  # noqa: BLE001 - no network, HTTP error, timeout, a bad file
            log.warning("could not download %s (%s); classes are labelled by index", url,
                        exc if isinstance(exc, DownloadError) else _first_line(exc))
    return [f"class {i}" for i in range(NUM_CLASSES)], "none: classes labelled by index"


def parse_categories(path: Path) -> list[str]:
    labels: dict[int, str] = {}
    lines = bounded.read_text(path, bounded.CATEGORIES_BYTES, "categories file").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 6):
            raise UserError(f"{path}:{number}: expected '/a/airfield 0', got {line[:60]!r}")
        name = parts[0]
        # "/a/airfield" -> "airfield"; "/b/bedroom/indoor" -> "bedroom/indoor"
        labels[int(parts[1])] = name[3:] if name.startswith("/") and len(name) > 3 else name
    if sorted(labels) != list(range(NUM_CLASSES)):
        raise UserError(f"{path}: expected {NUM_CLASSES} categories numbered 0..{NUM_CLASSES - 1}, "
                        f"got {len(labels)}")
    return [labels[i] for i in range(NUM_CLASSES)]


def provision(weights: Path | None, categories: Path | None, arch: str, cache_dir: Path, device: str,
              seed: int, strict: bool, offline: bool, progress: bool = True) -> PlacesModel:
    """Everything the Places sections need, or a UserError before any work when ``strict``."""
    dev = pick_device(device)
    path, reason = resolve_weights(weights, arch, cache_dir, offline, progress)
    if path is None:
        message = (f"no Places365 weights: {reason}. Download {weights_url(arch)} and pass "
                   f"--weights PATH, or put it in {cached_weight_locations(arch, cache_dir)[0].parent}/")
        if strict:
            raise UserError(message + " (--strict forbids the untrained demo model)")
        log.warning("%s. Continuing with an UNTRAINED %s: every Places figure is marked DEMO.", message, arch)
        torch.manual_seed(seed)
        model = build_model(arch, None)
        sha, shown, demo = state_dict_sha256(model), f"demo (untrained, seed {seed})", True
    else:
        model = build_model(arch, read_state_dict(path), str(path))
        sha, shown, demo, reason = file_sha256(path), str(path), False, ""
    labels, source = load_labels(categories, path, cache_dir, offline or demo, progress)
    # NHWC weights: on a CPU oneDNN runs 3d's curves 1.25x faster (benchmarks/bench_cam_faithfulness.py)
    # and the Places sections 1.17x; the layout changes no shape and no result beyond float rounding
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    model = model.to(dev)
    return PlacesModel(model=model, arch=arch, weights=shown, sha256=sha, demo=demo,
                       demo_reason=reason, labels=labels, categories_source=source, device=dev)
