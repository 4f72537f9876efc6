"""Scene provisioning: hostile image files, concept sidecars, safe and unique ids."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from miniplaces.errors import UserError
from miniplaces.inputs import scenes


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def jpeg_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("data, words", [
    (b"", "empty file"),
    (b"this is not a picture\n", "not an image"),
    (jpeg_bytes()[:300], "cannot decode"),            # truncated JPEG
])
def test_unreadable_files_raise_a_one_line_reason(data, words):
    with pytest.raises(scenes.Unreadable, match=words) as info:
        scenes.decode_image(data)
    assert "\n" not in str(info.value)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.full((8, 8), 32768, dtype=np.uint16)
    values[0, 0] = 65535
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    rgb, _ = scenes.decode_image(path.read_bytes())
    pixels = np.asarray(rgb)
    assert rgb.mode == "RGB" and pixels[1, 1, 0] == 128 and pixels[0, 0, 0] == 255


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    rgb, _ = scenes.decode_image(path.read_bytes())
    r, g, b = np.asarray(rgb)[8, 8]
    assert rgb.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))        # fully transparent black -> white
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgb, _ = scenes.decode_image(save(rgba, tmp_path / "a.png").read_bytes())
    assert tuple(np.asarray(rgb)[4, 4]) == (255, 255, 255) and tuple(np.asarray(rgb)[0, 0]) == (0, 0, 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 1)
    path = save(palette, tmp_path / "p.png", transparency=0)
    rgb, _ = scenes.decode_image(path.read_bytes())
    assert tuple(np.asarray(rgb)[4, 4]) == (255, 255, 255) and tuple(np.asarray(rgb)[0, 0]) == (255, 0, 0)


def test_grayscale_and_one_pixel_images(tmp_path):
    rgb, size = scenes.decode_image(save(Image.new("L", (5, 3), 77), tmp_path / "g.png").read_bytes())
    assert rgb.mode == "RGB" and size == (5, 3) and tuple(np.asarray(rgb)[0, 0]) == (77, 77, 77)
    rgb, size = scenes.decode_image(save(Image.new("RGB", (1, 1), (1, 2, 3)),
                                         tmp_path / "one.png").read_bytes())
    assert size == (1, 1) and rgb.size == (1, 1)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 20))               # red on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6                                       # rotate 90 degrees clockwise to display
    path = save(image, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    rgb, size = scenes.decode_image(path.read_bytes())
    assert size == (20, 40) and rgb.size == (20, 40)
    assert np.asarray(rgb)[2, 10, 0] > 200                  # red is now at the top


def test_very_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12000, 9000), (10, 120, 200)).save(path, quality=50)
    assert Image.MAX_IMAGE_PIXELS is not None and 12000 * 9000 > Image.MAX_IMAGE_PIXELS
    rgb, size = scenes.decode_image(path.read_bytes())
    assert size == (12000, 9000) and max(rgb.size) <= scenes.MAX_SIDE
    assert Image.MAX_IMAGE_PIXELS is not None                # the global limit is restored


def test_too_large_non_jpeg_is_skipped_not_a_bomb_traceback(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (300, 300)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)    # 300 x 300 is then > 2 x the limit: a bomb
    with pytest.raises(scenes.Unreadable, match="above the decoding limit"):
        scenes.decode_image(path.read_bytes())
    assert Image.MAX_IMAGE_PIXELS == 1000


def write_concepts(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_concepts_boxes_polygons_and_exclusions(tmp_path):
    warnings = []
    path = write_concepts(tmp_path / "x.concepts.json", {"concepts": {
        "sky": [{"box": [0, 0, 100, 50]}, {"box": [0, 0, 50, 50], "exclude": True}],
        "building": [{"polygon": [[0, 50], [100, 50], [100, 100], [0, 100]]}]}})
    concepts = scenes.load_concepts(path, (100, 100), warnings.append)
    assert warnings == []
    masks = {n: scenes.rasterise(s, (100, 100), (100, 100)) for n, s in concepts.items()}
    assert masks["sky"].sum() == 50 * 50 and masks["sky"][:50, 50:].all()
    assert masks["building"].sum() == 100 * 50
    assert scenes.rasterise(concepts["building"], (100, 100), (10, 10)).sum() == 50   # any resolution


@pytest.mark.parametrize("doc, words", [
    ("{not json", "malformed JSON"),
    ({"concepts": {"lava": [{"box": [0, 0, 5, 5]}]}}, "unknown concept 'lava'"),
    ({"concepts": {"sky": [{"box": [500, 500, 900, 900]}]}}, "covers no pixel"),
    ({"concepts": {"sky": [{"circle": 3}]}}, "not a polygon"),
    ([1, 2], "expected an object"),
])
def test_bad_concept_files_warn_with_the_file_name(tmp_path, doc, words):
    warnings = []
    path = write_concepts(tmp_path / "bad.concepts.json", doc)
    assert scenes.load_concepts(path, (100, 100), warnings.append) == {}
    assert any(words in w and str(path) in w for w in warnings), warnings


def test_polygon_partly_outside_is_clipped_with_a_warning(tmp_path):
    warnings = []
    path = write_concepts(tmp_path / "c.concepts.json", {"concepts": {"sky": [{"box": [-50, -50, 50, 50]}]}})
    concepts = scenes.load_concepts(path, (100, 100), warnings.append)
    assert "sky" in concepts and any("outside" in w for w in warnings)
    assert scenes.rasterise(concepts["sky"], (100, 100), (100, 100)).sum() == 50 * 50


def test_default_scenes_ship_concepts_that_load_cleanly():
    warnings = []
    scene_set = scenes.load_scenes([], False, warnings.append)
    names = [s.name for s in scene_set.scenes]
    assert names == ["china.jpg", "evening_glow.jpg", "rocket.jpg", "coffee.png", "motorcycle_left.png",
                     "camera.png", "astronaut.png"]
    assert warnings == [] and all(s.concepts for s in scene_set.scenes)
    assert all(s.image.mode == "RGB" for s in scene_set.scenes)           # camera is greyscale on disk
    by_name = {s.name: s for s in scene_set.scenes}
    assert "sky" in by_name["rocket.jpg"].concepts and "building" in by_name["camera.png"].concepts


def test_default_set_opens_with_real_outdoor_scenes_for_2b():
    """2b asks for sky and building units and unit 300 on mountains: the first (focus) scene is a real
    scene with sky and a building, and a mountain mask is among the defaults, each mask a real part of
    its image (not the whole frame, not a sliver)."""
    scene_set = scenes.load_scenes([], False, lambda message: None)
    focus, second = scene_set.scenes[:2]
    assert {"sky", "building"} <= set(focus.concepts) and "mountain" in second.concepts
    for scene in (focus, second):
        masks = scene.masks()
        for concept in ("sky", "building", "mountain"):
            if concept in masks:
                assert 0.03 < masks[concept].mean() < 0.6, (scene.name, concept, masks[concept].mean())
        assert not (masks["sky"] & masks.get("building", np.zeros_like(masks["sky"]))).any()   # sky minus it
    sources = {s.name: s.source for s in scene_set.scenes}
    sources_doc = (scenes.DATA_DIR / "SOURCES.md").read_text()
    for name in ("china.jpg", "evening_glow.jpg"):
        assert any(word in sources[name] for word in ("CC BY", "LGPL")) and f"`{name}`" in sources_doc
    assert (scenes.DATA_DIR / "LGPL-3.0.txt").is_file() and (scenes.DATA_DIR / "GPL-3.0.txt").is_file()


def test_user_images_mixed_with_unreadable_ones(tmp_path):
    good = save(Image.new("RGB", (30, 20), (0, 200, 0)), tmp_path / "good.jpg")
    write_concepts(tmp_path / "good.concepts.json", {"concepts": {"grass": [{"box": [0, 10, 30, 20]}]}})
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    warnings = []
    scene_set = scenes.load_scenes([good, empty, text, tmp_path / "missing.png", good], True, warnings.append)
    assert [s.name for s in scene_set.scenes] == ["good.jpg"]
    assert scene_set.scenes[0].masks()["grass"].sum() == 30 * 10
    assert [Path(s["file"]).name for s in scene_set.skipped] == ["empty.jpg", "notes.jpg", "missing.png"]
    assert len(warnings) == 4 and all("\n" not in w for w in warnings)      # 3 skipped + 1 given twice


def test_no_usable_image_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    with pytest.raises(UserError, match="no usable scene image"):
        scenes.load_scenes([bad], True, lambda message: None)


def test_ids_are_safe_and_unique(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    hostile = save(Image.new("RGB", (4, 4)), tmp_path / "<img src=x onerror=alert(1)>.jpg")
    one = save(Image.new("RGB", (4, 4)), tmp_path / "a" / "x.jpg")
    two = save(Image.new("RGB", (4, 4), (9, 9, 9)), tmp_path / "b" / "x.jpg")
    dots = save(Image.new("RGB", (4, 4)), tmp_path / "..jpg", format="JPEG")
    scene_set = scenes.load_scenes([hostile, one, two, dots], True, lambda m: None)
    ids = [s.id for s in scene_set.scenes]
    assert len(set(ids)) == 4 and all(set(i) <= set("abcdefghijklmnopqrstuvwxyz"
                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
                                      for i in ids)
    names = [s.name for s in scene_set.scenes]
    assert len(set(names)) == 4 and names[0] == "<img src=x onerror=alert(1)>.jpg"
    assert names[1] == str(one) and names[2] == str(two)
