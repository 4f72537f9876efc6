"""Scene images for Problems 2 and 3, and their optional concept masks.

Default scenes are openly licensed photos: two outdoor scenes (a temple under sky, scikit-learn's
sample image; a lake under hills, shipped in data/scenes/) first, then scikit-image's; ``--images``
adds (or with ``--replace-images`` replaces them with) the user's files. Decoding is defensive: any
file PIL can read is turned into an RGB image the way a viewer shows it (EXIF orientation applied,
transparency over white, 16-bit greyscale scaled to 8 bit, CMYK converted), at most ``MAX_SIDE`` pixels
a side (JPEGs are decoded at reduced scale so a 100-Mpixel photo never sits in memory); a file that
cannot be read is skipped with a one-line warning. Concept masks come from a sidecar JSON file
(``foo.concepts.json`` beside ``foo.jpg``; docs/concepts.md), validated with warnings that name the
file, never with a traceback.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from miniplaces import resources
from miniplaces.errors import UserError
from miniplaces.inputs import bounded
from miniplaces.outdir import unique_slug

DATA_DIR = resources.folder("scenes")
# name in results.json -> (loader, source). Grayscale photos are converted to RGB. The outdoor scenes
# come first: the first scene is the one Problems 2-3 show in front, and 2b asks about sky, buildings
# and mountains (licences: data/scenes/SOURCES.md).
DEFAULT_SCENES: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "china.jpg": (lambda: _sklearn("china.jpg"),
                  "scikit-learn sample image china.jpg (danielbuechele on Flickr, CC BY 2.0)"),
    "evening_glow.jpg": (lambda: _shipped("evening_glow.jpg"),
                         ("data/scenes/evening_glow.jpg (KDE wallpaper Evening Glow by Ian Hex, LGPL-3.0; "
                          "640 x 400 copy)")),
    "rocket.jpg": (lambda: _skimage("rocket"), "skimage.data (rocket.jpg)"),
    "coffee.png": (lambda: _skimage("coffee"), "skimage.data (coffee.png)"),
    "motorcycle_left.png": (lambda: _skimage("stereo_motorcycle")[0], "skimage.data (motorcycle_left.png)"),
    "camera.png": (lambda: _skimage("camera"), "skimage.data (camera.png)"),
    "astronaut.png": (lambda: _skimage("astronaut"), "skimage.data (astronaut.png)"),
}
MAX_SIDE = 2048          # the network sees 256 x 256; overlays and masks need no more
CONCEPTS_SUFFIX = ".concepts.json"
# Rasterising costs time per vertex and pixel (~3 ms per vertex at 1024 x 1024), so a concepts file
# may hold this many points (the shipped files: at most 26 per polygon, 88 per file), and, as each
# shape is one pass over its pixels (~6 ms for a box on a 256 x 256 image), this many shapes (a box
# is 4 points; the shipped files have at most 6 shapes).
MAX_POLYGON_POINTS = 1_000
MAX_FILE_POINTS = 2_000
MAX_FILE_SHAPES = 64
SHOWN_NAMES = 3   # a warning repeated for many shapes or concepts names this many, then counts the rest
# Concept names accepted in sidecar files: Broden's (Network Dissection) common scene, object and
# material labels, so a unit found for "sky" here means what it means in the dissection literature.
VOCABULARY = frozenset("""
    sky cloud building house skyscraper tower mountain hill rock sand snow water sea river lake
    tree plant flower grass field earth ground road sidewalk path bridge fence railing
    floor wall ceiling window door stairs column shelf cabinet box table desk chair sofa bed
    person car bus truck motorbike bicycle airplane boat rocket flag signboard lamp light
    cup plate bottle book screen camera tripod wood metal fabric glass plastic brick
""".split())


def _skimage(name: str):
    import skimage.data

    return getattr(skimage.data, name)()


def _sklearn(name: str) -> np.ndarray:
    """Imported here: scikit-learn takes about a second to import, and only the default scenes need it."""
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _shipped(name: str) -> np.ndarray:
    with Image.open(DATA_DIR / name) as image:
        return np.asarray(image.convert("RGB"))


class Unreadable(Exception):
    """An input file that cannot be used; the message is the one-line reason shown to the user."""


@dataclass
class Shape:
    """One polygon (or box, stored as its 4 corners) in image pixel coordinates; ``exclude`` cuts it out."""

    points: list[tuple[float, float]]
    exclude: bool = False


@dataclass
class Scene:
    """One input image. ``name`` is the key in results.json; ``id`` is safe in file names and unique."""

    name: str
    id: str
    image: Image.Image                      # RGB, at most MAX_SIDE a side
    sha256: str                             # of the file's bytes (of the pixels for built-in scenes)
    source: str
    original_size: tuple[int, int]          # (w, h) as displayed, before any reduction
    concepts: dict[str, list[Shape]] = field(default_factory=dict)
    concepts_file: str | None = None

    def identity(self) -> dict[str, Any]:
        """The keys every per-scene section writes first, so that results.json, the provenance table
        and the scenes appendix describe the image whichever sections ran."""
        return {"image": self.name, "id": self.id, "source": self.source, "sha256": self.sha256,
                "size": list(self.original_size), "concepts_file": self.concepts_file}

    def masks(self, size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Boolean masks (H, W) per concept, rasterised at ``size`` = (H, W) (default: the image's)."""
        h, w = size or (self.image.height, self.image.width)
        return {name: rasterise(shapes, self.image.size, (h, w)) for name, shapes in self.concepts.items()}


@dataclass
class SceneSet:
    scenes: list[Scene]
    skipped: list[dict[str, str]]           # [{"file", "why"}]
    duplicates: list[dict[str, str]] = field(default_factory=list)   # [{"file", "same_as"}]


def drop_duplicates(scene_set: SceneSet, network_input: Callable[[Scene], bytes],
                    warn: Callable[[str], None]) -> SceneSet:
    """Keep the first of scenes the network sees identically (same ``network_input`` bytes: the
    preprocessed tensor), list the others as duplicates: two copies of one input would count twice in
    every "across N scenes"."""
    kept: dict[bytes, Scene] = {}
    scenes, duplicates = [], list(scene_set.duplicates)
    for scene in scene_set.scenes:
        key = hashlib.sha256(network_input(scene)).digest()
        if key in kept:
            warn(f"{scene.name}: the same network input as {kept[key].name} after preprocessing; "
                 "analysed once, listed as a duplicate")
            duplicates.append({"file": scene.name, "same_as": kept[key].name})
        else:
            kept[key] = scene
            scenes.append(scene)
    return SceneSet(scenes, scene_set.skipped, duplicates)


def rasterise(shapes: Sequence[Shape], image_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Union of the included shapes minus the excluded ones, drawn at ``size`` = (H, W).

    Coordinates are pixel edges of an image of ``image_size`` = (w, h): (0, 0) is the top-left
    corner, (w, h) the bottom-right, so a box [0, 0, w, h] covers the whole image at any size.
    """
    from skimage.draw import polygon as fill_polygon

    h, w = size
    sx, sy = w / image_size[0], h / image_size[1]
    mask = np.zeros((h, w), dtype=bool)
    for shape in sorted(shapes, key=lambda s: s.exclude):   # includes first, then cut-outs
        # skimage tests pixel centres at integer coordinates; pixel i's centre is at edge coordinate i + 0.5
        rows = np.array([y * sy - 0.5 for _, y in shape.points])
        cols = np.array([x * sx - 0.5 for x, _ in shape.points])
        rr, cc = fill_polygon(rows, cols, shape=(h, w))
        mask[rr, cc] = not shape.exclude
    return mask


# ---------------------------------------------------------------------------------------------- images

@contextlib.contextmanager
def _pixel_limit_lifted() -> Iterator[int]:
    """Open files past PIL's decompression-bomb check; we enforce our own limit on what is decoded."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield limit or 0
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def decode_image(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    """Bytes -> (RGB image at most MAX_SIDE a side, displayed size before reduction); Unreadable if not."""
    if not data:
        raise Unreadable("empty file (0 bytes)")
    try:
        with _pixel_limit_lifted() as limit:
            image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w < 1 or h < 1:
                raise Unreadable(f"image has no pixels ({w}x{h})")
            if image.format == "JPEG" and max(w, h) > MAX_SIDE:
                scale = MAX_SIDE / max(w, h)   # DCT scaling: decodes at 1/2, 1/4 or 1/8 size
                image.draft(image.mode, (math.ceil(w * scale), math.ceil(h * scale)))
            elif limit and w * h > limit:
                raise Unreadable(f"{w}x{h} ({w * h / 1e6:.0f} Mpixels) is above the decoding limit of "
                                 f"{limit / 1e6:.0f} Mpixels for {image.format} files (only JPEGs are "
                                 "decoded at reduced size); downscale it first")
            image.load()
            try:
                transposed = ImageOps.exif_transpose(image)
            except Exception:   # a malformed EXIF block: show the pixels as stored
                transposed = image
            orientation_swaps = transposed.size != image.size
            displayed = (h, w) if orientation_swaps else (w, h)
            rgb = to_rgb(transposed)
    except Unreadable:
        raise
    except Image.UnidentifiedImageError:
        raise Unreadable("not an image PIL can identify (wrong extension or not an image file)") from None
    except Exception as exc:   # truncated data, broken chunks, unsupported modes: PIL raises many types
        text = str(exc).strip().splitlines()
        raise Unreadable(
            f"cannot decode: {type(exc).__name__}: {text[0][:120] if text else ''}".rstrip(": ")) from None
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return rgb, displayed


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB as a viewer would show it."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float greyscale: PIL's convert("L") would clip everything above 255
        values = np.asarray(image, dtype=np.float64)
        if mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        elif values.size and np.nanmax(values) > 255:
            values = values / 257.0   # 65535 -> 255
        grey = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info) \
            or (mode in ("L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def safe_id(name: str, taken: set[str]) -> str:
    """A file-name stem of [A-Za-z0-9_-] only, at most 40 characters, unique among ``taken`` (which it
    joins)."""
    stem = name[: -len(CONCEPTS_SUFFIX)] if name.endswith(CONCEPTS_SUFFIX) else Path(name).stem
    return unique_slug(stem, taken, "image")


# ---------------------------------------------------------------------------------------------- concepts

def load_concepts(path: Path, displayed_size: tuple[int, int], warn: Callable[[str], None]
                  ) -> dict[str, list[Shape]]:
    """Read and validate a sidecar file; every problem is a warning naming the file, never an exception.

    Shapes are returned in the coordinates of the displayed image (w, h) = ``displayed_size``.
    """
    where = str(path)
    try:
        doc = json.loads(bounded.read_text(path, bounded.CONCEPTS_BYTES, "concepts file"))
    except bounded.InputError as exc:
        warn(f"{exc}; no concept masks for this image")
        return {}
    except json.JSONDecodeError as exc:
        warn(f"{where}: malformed JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
             "no concept masks for this image")
        return {}
    except RecursionError:
        warn(f"{where}: malformed JSON (nested too deeply); no concept masks for this image")
        return {}
    except ValueError as exc:   # a number of more than 4300 digits
        warn(f"{where}: malformed JSON ({_clip(str(exc), 80)}); no concept masks for this image")
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("concepts"), dict):
        warn(f"{where}: expected an object with a \"concepts\" object (see docs/concepts.md); no concept "
             "masks for this image")
        return {}
    scale = (1.0, 1.0)
    if "image_size" in doc:
        size = doc["image_size"]
        if (isinstance(size, list) and len(size) == 2 and all(_number(v) and v > 0 for v in size)):
            scale = (displayed_size[0] / size[0], displayed_size[1] / size[1])
        else:
            warn(f"{where}: \"image_size\" must be [width, height] in pixels; using the image's own size")
    concepts: dict[str, list[Shape]] = {}
    budget = [MAX_FILE_POINTS, MAX_FILE_SHAPES]   # points and shapes left for this file
    unknown = [repr(_clip(name)) for name in doc["concepts"] if name not in VOCABULARY]
    if unknown:
        warn(f"{where}: unknown concept{'s' if len(unknown) > 1 else ''} {_some(unknown)} ignored (known: "
             "see docs/concepts.md, e.g. sky, building, mountain)")
    for name, entries in doc["concepts"].items():
        shown = _clip(name)
        if name not in VOCABULARY:
            continue
        shapes = _parse_shapes(entries, scale, f"{where}: concept {shown!r}", warn, budget)
        if not shapes:
            continue
        w, h = displayed_size
        outside = [p for s in shapes for p in s.points if not (-1 <= p[0] <= w + 1 and -1 <= p[1] <= h + 1)]
        if outside:
            warn(f"{where}: concept {shown!r} has {len(outside)} point(s) outside the {w}x{h} image "
                 f"(e.g. {outside[0][0]:g},{outside[0][1]:g}); clipped to the image")
        shapes = [Shape(points, s.exclude) for s in shapes
                  if len(points := clip_polygon(s.points, w, h)) >= 3]
        if not shapes or not rasterise(shapes, displayed_size, (min(h, 1024), min(w, 1024))).any():
            warn(f"{where}: concept {shown!r} covers no pixel of the image; ignored")
            continue
        concepts[name] = shapes
    return concepts


def clip_polygon(points: list[tuple[float, float]], w: float, h: float) -> list[tuple[float, float]]:
    """The part of a polygon inside the image rectangle [0, w] x [0, h] (Sutherland-Hodgman), so that a
    shape reaching far outside (a box to 1e308) keeps the pixels it covers inside."""
    def cut(pts, inside, cross):
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(x):
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * ((x - a[0]) / (b[0] - a[0])))

    def at_y(y):
        return lambda a, b: (a[0] + (b[0] - a[0]) * ((y - a[1]) / (b[1] - a[1])), y)

    for inside, cross in ((lambda p: p[0] >= 0, at_x(0.0)), (lambda p: p[0] <= w, at_x(float(w))),
                          (lambda p: p[1] >= 0, at_y(0.0)), (lambda p: p[1] <= h, at_y(float(h)))):
        points = cut(points, inside, cross)
        if not points:
            break
    return points


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bounded(coordinate: float) -> float:
    """A coordinate within +-1e12 pixels (far outside any image), so clipping arithmetic cannot overflow."""
    return min(max(float(coordinate), -1e12), 1e12)


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _some(items: Sequence[Any]) -> str:
    """The first SHOWN_NAMES items and how many more: one warning line for a file that repeats a fault."""
    shown = ", ".join(map(str, items[:SHOWN_NAMES]))
    return shown + (f" and {len(items) - SHOWN_NAMES} more" if len(items) > SHOWN_NAMES else "")


def _parse_shapes(entries, scale: tuple[float, float], where: str, warn: Callable[[str], None],
                  budget: list[int]) -> list[Shape]:
    """Valid shapes of one concept; ``budget`` holds the points and shapes the file may still use
    (MAX_FILE_POINTS, MAX_FILE_SHAPES). Shapes ignored for the same reason make one warning."""
    if not isinstance(entries, list):
        warn(f"{where}: expected a list of shapes ({{\"polygon\": [[x, y], ...]}} or "
             f"{{\"box\": [x0, y0, x1, y1]}}); ignored")
        return []
    sx, sy = scale
    shapes: list[Shape] = []
    ignored: dict[str, list[str]] = {}   # why -> the shapes (their numbers, with detail)
    for number, entry in enumerate(entries, 1):
        points = None
        if budget[1] <= 0:
            ignored.setdefault(f"over the {MAX_FILE_SHAPES} shapes a file may have", []).append(str(number))
            continue
        if isinstance(entry, dict) and isinstance(entry.get("polygon"), list):
            raw = entry["polygon"]
            if len(raw) > min(MAX_POLYGON_POINTS, budget[0]):
                why = (f"more points than the {MAX_POLYGON_POINTS} a polygon (and {MAX_FILE_POINTS} a file) "
                       "may have")
                ignored.setdefault(why, []).append(f"{number} ({len(raw)} points)")
                continue
            if len(raw) >= 3 and all(isinstance(p, list) and len(p) == 2 and all(map(_number, p))
                                     for p in raw):
                points = [(_bounded(x * sx), _bounded(y * sy)) for x, y in raw]
        elif isinstance(entry, dict) and isinstance(entry.get("box"), list):
            raw = entry["box"]
            if len(raw) == 4 and all(map(_number, raw)):
                x0, x1 = sorted((_bounded(raw[0] * sx), _bounded(raw[2] * sx)))
                y0, y1 = sorted((_bounded(raw[1] * sy), _bounded(raw[3] * sy)))
                points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        if points is not None and len(points) > budget[0]:   # a box past the file's points
            ignored.setdefault(f"over the {MAX_FILE_POINTS} points a file may have", []).append(str(number))
            continue
        if points is None:
            ignored.setdefault("not a polygon of at least 3 [x, y] points or a box [x0, y0, x1, y1]",
                               []).append(str(number))
            continue
        budget[0] -= len(points)
        budget[1] -= 1
        shapes.append(Shape(points, exclude=bool(entry.get("exclude", False))))
    for why, numbers in ignored.items():
        warn(f"{where}: shape{'s' if len(numbers) > 1 else ''} {_some(numbers)}: {why}; ignored")
    return shapes


# ---------------------------------------------------------------------------------------------- the set

def default_scenes(taken_ids: set[str], warn: Callable[[str], None]) -> list[Scene]:
    """The built-in photos with the sidecars shipped in data/scenes/."""
    scenes = []
    for name, (load, source) in DEFAULT_SCENES.items():
        pixels = np.ascontiguousarray(load())
        image = to_rgb(Image.fromarray(pixels))
        sha = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
        sidecar = DATA_DIR / (Path(name).stem + CONCEPTS_SUFFIX)
        scene = Scene(name, safe_id(name, taken_ids), image, sha, source, image.size)
        if sidecar.is_file():
            scene.concepts = load_concepts(sidecar, image.size, warn)
            scene.concepts_file = f"data/scenes/{sidecar.name}"
        scenes.append(scene)
    return scenes


def user_scene(path: Path, name: str, taken_ids: set[str], warn: Callable[[str], None]) -> Scene:
    """One --images file; raises Unreadable with the reason when it cannot be used."""
    if not path.exists():
        raise Unreadable("no such file")
    if not path.is_file():
        raise Unreadable("not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror or type(exc).__name__})") from None
    image, displayed = decode_image(data)
    scene = Scene(name, safe_id(path.name, taken_ids), image, hashlib.sha256(data).hexdigest(), str(path),
                  displayed)
    sidecar = concepts_file_for(path)
    if sidecar.is_file():
        scene.concepts = load_concepts(sidecar, displayed, warn)
        scene.concepts_file = str(sidecar)
    return scene


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.absolute() == b.absolute()


def concepts_file_for(image_path: Path) -> Path:
    """``foo.jpg`` -> ``foo.concepts.json`` in the same folder."""
    return image_path.with_name(image_path.stem + CONCEPTS_SUFFIX)


def load_scenes(images: Sequence[Path], replace: bool, warn: Callable[[str], None]) -> SceneSet:
    """Default scenes (unless ``replace``) and the user's images; UserError when none is usable."""
    taken_ids: set[str] = set()
    scenes = [] if replace else default_scenes(taken_ids, warn)
    skipped: list[dict[str, str]] = []
    unique: list[Path] = []
    for path in map(Path, images):
        if any(_same_file(path, other) for other in unique):
            warn(f"--images {path}: given twice; analysed once")
        else:
            unique.append(path)
    names = [p.name for p in unique] + [s.name for s in scenes]
    for path in unique:
        # the file name identifies the scene; a second file with the same name is named by its path
        name = path.name if names.count(path.name) == 1 else str(path)
        try:
            scenes.append(user_scene(path, name, taken_ids, warn))
        except Unreadable as exc:
            warn(f"--images {path}: skipped: {exc}")
            skipped.append({"file": str(path), "why": str(exc)})
    if not scenes:
        listed = "; ".join(f"{s['file']}: {s['why']}" for s in skipped) or "no --images given"
        raise UserError(f"no usable scene image ({listed}); drop --replace-images or give readable images")
    return SceneSet(scenes, skipped)
