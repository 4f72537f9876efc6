"""The Places365 checkpoint loader on small checkpoints built in the official format."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from checkpoints import resnet_state, write_malicious, write_official, write_python2_latin1

from miniplaces.errors import UserError
from miniplaces.inputs.places_model import build_model, parse_categories, provision, read_state_dict


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return resnet_state("resnet18")


def load(path: Path, arch: str = "resnet18") -> torch.nn.Module:
    return build_model(arch, read_state_dict(path), str(path))


def same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("legacy", [True, False])
def test_official_format_with_module_prefix_loads(tmp_path, state, legacy):
    model = load(write_official(tmp_path / "r18.pth.tar", state, legacy=legacy))
    assert same_weights(model, state)
    assert not model.training


def test_state_dict_without_prefix_is_accepted(tmp_path, state):
    assert same_weights(load(write_official(tmp_path / "r.pth.tar", state, prefix=False)), state)


def test_bare_state_dict_is_accepted(tmp_path, state):
    torch.save(state, tmp_path / "bare.pth")
    assert same_weights(load(tmp_path / "bare.pth"), state)


def test_python2_latin1_checkpoint_loads(tmp_path, state):
    path = write_python2_latin1(tmp_path / "py2.pth.tar", state)
    with pytest.raises(UnicodeDecodeError):
        torch.load(path, weights_only=True)  # the failure users hit without latin1
    assert same_weights(load(path), state)


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML page"),
    (b"\n  <html><head><title>Error</title>", "HTML page"),
    (b"this is not a checkpoint at all" * 10, "corrupt"),
])
def test_unusable_files_give_one_line_errors(tmp_path, content, words):
    path = tmp_path / "bad.pth.tar"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("legacy", [True, False])
def test_truncated_checkpoint_is_reported(tmp_path, state, legacy):
    full = write_official(tmp_path / "full.pth.tar", state, legacy=legacy).read_bytes()
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(UserError, match="truncated or corrupt|not a readable checkpoint"):
        read_state_dict(path)


def test_wrong_architecture_names_the_right_one(tmp_path, state):
    path = write_official(tmp_path / "r18.pth.tar", state)
    with pytest.raises(UserError, match="--arch resnet18"):
        load(path, arch="resnet50")


def test_wrong_class_count_is_reported(tmp_path):
    path = write_official(tmp_path / "r18_1000.pth.tar", resnet_state("resnet18", num_classes=1000))
    with pytest.raises(UserError, match="number of classes"):
        load(path)


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = write_malicious(tmp_path / "evil.pth.tar", marker)
    with pytest.raises(UserError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_named_weights_that_fail_never_fall_back_to_demo(tmp_path):
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"<html>")
    with pytest.raises(UserError):
        provision(bad, None, "resnet18", tmp_path / "cache", "cpu", 0, strict=False, offline=True)
    with pytest.raises(UserError, match="no such file"):
        provision(tmp_path / "missing.pth.tar", None, "resnet18", tmp_path / "cache", "cpu", 0, False, True)


def test_no_weights_gives_marked_demo_or_strict_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    places = provision(None, None, "resnet18", tmp_path / "cache", "cpu", 0, strict=False, offline=True)
    assert places.demo and "untrained" in places.weights and len(places.sha256) == 64
    assert places.labels[0] == "class 0" and len(places.labels) == 365
    again = provision(None, None, "resnet18", tmp_path / "cache", "cpu", 0, strict=False, offline=True)
    assert again.sha256 == places.sha256  # the seed fixes the demo weights
    with pytest.raises(UserError, match="--strict"):
        provision(None, None, "resnet18", tmp_path / "cache", "cpu", 0, strict=True, offline=True)


def test_cached_weights_and_categories_beside_them_are_used(tmp_path, state, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "cache"
    (cache / "weights").mkdir(parents=True)
    write_official(cache / "weights" / "resnet18_places365.pth.tar", state)
    lines = [f"/{chr(97 + i % 26)}/scene_{i} {i}" for i in range(365)]
    (cache / "weights" / "categories_places365.txt").write_text("\n".join(lines) + "\n")
    places = provision(None, None, "resnet18", cache, "cpu", 0, strict=True, offline=True)
    assert not places.demo and places.labels[3] == "scene_3"
    import hashlib
    expected = hashlib.sha256((cache / "weights" / "resnet18_places365.pth.tar").read_bytes()).hexdigest()
    assert places.sha256 == expected


def test_the_cpu_model_runs_channels_last_with_the_checkpoints_results(tmp_path, state, monkeypatch):
    """The NHWC layout is a speed-up only: same weights, same logits up to float rounding."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = write_official(tmp_path / "w.pth.tar", state)
    places = provision(path, None, "resnet18", tmp_path / "cache", "cpu", 0, strict=False, offline=True)
    assert places.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert same_weights(places.model, state)
    reference = load(path)
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got, want = places.model(x), reference(x)
    assert not reference.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    assert torch.equal(got.argmax(dim=1), want.argmax(dim=1))


def test_categories_parser(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("".join(f"/b/bedroom/indoor_{i} {i}\n" for i in range(365)))
    assert parse_categories(path)[7] == "bedroom/indoor_7"
    path.write_text("/a/airfield 0\n/a/alley 1\n")
    with pytest.raises(UserError, match="365 categories"):
        parse_categories(path)
    path.write_text("garbage line here\n")
    with pytest.raises(UserError, match=":1:"):
        parse_categories(path)
