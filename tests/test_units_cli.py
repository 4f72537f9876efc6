"""End to end: a user image with a concepts file (and a hostile name) through the CLI, Problems 2 and 3."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>.jpg"


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One CLI run of Problems 2 and 3 on a user image with a concepts file, a hostile name and a broken
    file."""
    tmp_path = tmp_path_factory.mktemp("units_cli")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    pixels[:20] = (90, 160, 230)                                          # a "sky" band on top
    Image.fromarray(pixels).save(pictures / HOSTILE, quality=90)
    (pictures / "<img src=x onerror=alert(1)>.concepts.json").write_text(json.dumps({"concepts": {
        "sky": [{"box": [0, 0, 80, 20]}],
        "<script>": [{"box": [0, 0, 5, 5]}],                               # unknown name: a warning
        "building": [{"polygon": [[0, 20], [200, 20], [200, 60], [0, 60]]}],   # partly outside: clipped
    }}))
    (pictures / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "generate_report.py"), "--only", "units", "cam", "--preset", "quick",
         "--arch", "resnet18", "--offline", "--image-size", "64", "--sweep-limit", "20", "--no-pdf",
         "--replace-images", "--images", str(pictures / HOSTILE), str(pictures / "broken.jpg"),
         "--out", str(out), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 0, result.stderr
    return {"tmp": tmp_path, "pictures": pictures, "out": out, "stderr": result.stderr,
            "results": json.loads((out / "results.json").read_text())}


def test_user_image_with_concepts_from_the_command_line(hostile_run):
    tmp_path, pictures, out = hostile_run["tmp"], hostile_run["pictures"], hostile_run["out"]
    stderr = hostile_run["stderr"]
    assert "Traceback" not in stderr and "broken.jpg" in stderr and "unknown concept" in stderr

    results = hostile_run["results"]
    [scene] = results["scenes"]
    assert scene["image"] == HOSTILE
    assert [t["index"] for t in scene["top5"]] == scene["cam"]["classes"]
    assert set(scene["concept_units"]) == {"sky", "building"}
    assert all(isinstance(u["unit"], int) and 0 <= u["iou"] <= 1 for u in scene["concept_units"]["sky"])
    assert len(scene["ablation"]["units"]) == 5 and len(scene["ablation"]["top5_after"]) == 5
    for sweep in scene["sweep"]["by_weight"], scene["sweep"]["by_contribution"]:
        assert sweep["k"] == list(range(21)) and len(sweep["prob"]) == 21
        assert sweep["min_k"] is None or 1 <= sweep["min_k"] <= 20
    assert [s["file"] for s in results["units"]["skipped"]] == [str(pictures / "broken.jpg")]

    npz = out / scene["cam"]["file"]
    assert npz.resolve().is_relative_to(out.resolve())
    with np.load(npz) as arrays:
        assert sorted(arrays.files) == sorted(str(c) for c in scene["cam"]["classes"])
        assert all(arrays[k].shape == (2, 2) for k in arrays.files)        # 64 px input -> 2 x 2 layer4 maps

    written = [p for p in tmp_path.rglob("*") if p.is_file()
               and not p.resolve().is_relative_to(out.resolve())
               and not p.resolve().is_relative_to(tmp_path / "cache")]
    assert (sorted(p.name for p in written)
            == sorted(p.name for p in pictures.iterdir()))   # nothing written outside out/

    html = (out / "report.html").read_text()
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;.jpg" in html
    warning = next(line for line in html.splitlines()
                   if "unknown concept" in line)   # shown in the run summary
    assert "&#39;&lt;script&gt;&#39;" in warning and "<script>" not in warning
    for anchor in ["units-2a", "units-2b", "units-2c", "units-2d", "cam-3a", "cam-3b", "cam-3c", "cam-3d"]:
        assert f'id="{anchor}"' in html


def test_every_iou_can_be_recomputed_from_the_saved_dissection(hostile_run):
    """units/dissection.npz holds the thresholds, maps and masks: one IoU recomputed from it matches
    results.json."""
    from analyses import concept_units

    out, results = hostile_run["out"], hostile_run["results"]
    [scene] = results["scenes"]
    dissection = results["units"]["dissection"]
    with np.load(out / dissection["file"]) as saved:
        assert list(saved["scene_ids"]) == [scene["id"]]
        maps, thresholds = saved[f"maps_{scene['id']}"], saved["thresholds"]
        assert np.array_equal(thresholds, concept_units.unit_thresholds([maps], float(saved["quantile"])))
        concepts = list(saved[f"concepts_{scene['id']}"])
        masks = saved[f"masks_{scene['id']}"]
    assert masks.shape[1:] == tuple(dissection["mask_size"])
    sky = next(c for c in scene["concepts"] if c["concept"] == "sky")
    best = sky["top"][0]
    inter, union = concept_units.iou_counts(maps[best["unit"]:best["unit"] + 1],
                                            thresholds[best["unit"]:best["unit"] + 1],
                                            masks[concepts.index("sky")])
    assert inter[0, 0] / union[0, 0] == pytest.approx(best["iou"], abs=1e-12)
    # the calibrated call follows the stated rule, and the Network Dissection count is kept beside it
    for concept in scene["concepts"]:
        for unit in concept["top"]:
            assert unit["above_null"] == (concept["null_max_iou"] is not None
                                          and unit["iou"] > concept["null_max_iou"])
        assert concept["netdissect_count"] >= sum(u["iou"] >= dissection["cutoff"] for u in concept["top"])
        assert all(u["iou"] <= concept["cap"] + 1e-12 for u in concept["top"])


def test_the_exact_minimum_is_reported_beside_the_greedy_rankings(hostile_run):
    [scene] = hostile_run["results"]["scenes"]
    sweep = scene["sweep"]
    exact = sweep["exact"]
    assert exact["prob_before"] == pytest.approx(sweep["by_weight"]["prob"][0])
    for ranking in ("by_weight", "by_contribution"):
        min_k = sweep[ranking]["min_k"]
        if min_k is None:
            assert sweep["greedy_excess"][ranking] is None
        else:
            assert exact["k"] is not None and sweep["greedy_excess"][ranking] == min_k - exact["k"] >= 0
    if exact["k"] is not None:
        assert (len(exact["units"]) == exact["k"]
                and exact["new_top1"]["index"] != sweep["by_weight"]["class"]["index"])
