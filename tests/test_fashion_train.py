"""Data reading and verification, batched augmentation, train/get_prediction/evaluate, divergence,
determinism and the one-file model save/load."""
import gzip

import pytest
import torch

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist import evaluate_model
from analyses.fashion_mnist.model import ModelConfig, build_model, load_model, model_file_bytes
from analyses.fashion_mnist.train import TrialConfig, evaluate, fit, get_prediction

pytestmark = pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")
TINY = TrialConfig(epochs=2, batch_size=64, channels=(4, 8), lr=0.01)


@pytest.fixture(scope="module")
def fashion():
    torch.set_num_threads(2)
    return fdata.load(fdata.locate(None, None, offline=True))


@pytest.fixture(scope="module")
def small(fashion):
    return fdata.split(fashion, val_size=500, train_subset=1000)


def test_data_is_verified_and_split_is_fixed(fashion):
    assert fashion.train_x.shape == (60000, 1, 28, 28) and fashion.test_x.shape == (10000, 1, 28, 28)
    assert 0 <= float(fashion.train_x.min()) and float(fashion.train_x.max()) <= 1
    a, b = fdata.split(fashion, 500), fdata.split(fashion, 500)
    assert torch.equal(a.val_y, b.val_y) and len(a.train_y) == 59500
    full = fdata.split(fashion, 500, full_train=True)
    assert len(full.train_y) == 60000 and len(full.val_y) == 0


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(fdata.DataError, match="missing"):   # a --data-dir without the files is refused
        fdata.locate(tmp_path, None)
    with pytest.raises(fdata.DataError, match="missing"):
        fdata.load(tmp_path)
    for stem in fdata.FILES.values():
        (tmp_path / (stem + ".gz")).write_bytes((fdata.SYSTEM_DIR / (stem + ".gz")).read_bytes())
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(fdata.DataError, match="truncated"):
        fdata.load(fdata.locate(tmp_path, None))


def test_batched_augmentation():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:14, 3:6] = 1.0
    flipped = fdata.augment(x, ("flip",), g)
    n_flipped = int((flipped[:, 0, 10, 24] == 1).sum())
    assert 10 < n_flipped < 54 and torch.equal(flipped.sum((1, 2, 3)), x.sum((1, 2, 3)))
    shifted = fdata.augment(x, ("crop",), g)
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert not torch.equal(shifted, x)
    erased = fdata.augment(torch.ones(64, 1, 28, 28), ("erase",), g)
    assert 10 < int((erased.sum((1, 2, 3)) < 784).sum()) < 54
    with pytest.raises(ValueError, match="rotate"):
        fdata.parse_augment("flip+rotate")


def test_fit_is_deterministic_and_learns(small):
    a = fit(TINY, small, seed=3, device=torch.device("cpu"), keep_model=True)
    b = fit(TINY, small, seed=3, device=torch.device("cpu"), keep_model=True)
    assert a["status"] == "ok" and [r["epoch"] for r in a["history"]] == [1, 2]
    assert {"train_s", "val_acc", "train_loss", "val_loss"} <= set(a["history"][0])
    assert (a["history"] == b["history"]
            or [r["val_acc"] for r in a["history"]] == [r["val_acc"] for r in b["history"]])
    for (k, v), w in zip(a["net"].state_dict().items(), b["net"].state_dict().values()):
        assert torch.equal(v, w), k
    assert a["val_acc"] > 0.5  # 10 classes: chance is 0.1
    correct = a["val_correct"]  # per-image correctness of the last epoch, in the split's order
    assert correct.dtype == bool and correct.shape == (len(small.val_y),)
    assert a["val_acc"] == correct.mean() == a["history"][-1]["val_acc"]
    assert (correct == b["val_correct"]).all()


def test_epochs_before_the_last_are_scored_on_a_sample(small):
    """Only the last epoch, which every comparison uses, is scored on the whole validation split; the
    epochs before it on its first curve_images images, and the last reports that sample's score too."""
    cfg = TINY.updated({"epochs": 3, "curve_images": 120})
    result = fit(cfg, small, seed=3, device=torch.device("cpu"), keep_model=True)
    history, n = result["history"], len(small.val_y)
    assert [r["val_images"] for r in history] == [120, 120, n]
    assert "curve_acc" in history[-1] and all("curve_acc" not in r for r in history[:-1])
    correct = result["val_correct"]
    assert history[-1]["curve_acc"] == pytest.approx(correct[:120].mean())
    assert result["val_acc"] == pytest.approx(correct.mean()) and result["val_images"] == n
    sample = evaluate(result["net"], small.val_x[:120], small.val_y[:120])  # the sample is the split's head
    assert sample.accuracy == pytest.approx(history[-1]["curve_acc"])
    whole = fit(TINY.updated({"curve_images": 0}), small, seed=3, device=torch.device("cpu"))
    assert [r["val_images"] for r in whole["history"]] == [n, n] and "curve_acc" not in whole["history"][-1]
    assert fit(TINY.updated({"curve_images": 10 * n}), small, seed=3,
               device=torch.device("cpu"))["history"][0][
        "val_images"] == n   # a sample larger than the split is the split


def test_get_prediction_and_evaluate(small):
    net = build_model(ModelConfig(channels=(4,)))
    x, y = small.val_x[:50], small.val_y[:50]
    preds = get_prediction(x, net)
    assert preds.shape == (50,) and isinstance(get_prediction(x[0], net), int)
    assert get_prediction(x[0], net) == int(preds[0])
    assert evaluate(net, x, y).accuracy == pytest.approx(float((preds == y).float().mean()))
    assert evaluate(net, x, preds).accuracy == 1.0


def test_divergence_is_recorded(small):
    result = fit(TrialConfig(epochs=3, batch_size=64, channels=(4,), optimizer="sgd", lr=1e30,
                             schedule="constant"),
                 small, seed=0, device=torch.device("cpu"))
    assert result["status"] == "diverged" and result["val_acc"] is None and result["val_correct"] is None
    assert len(result["history"]) < 3 and "loss" in result["error"]


def test_saved_model_reloads_to_same_predictions(small, tmp_path, capsys):
    result = fit(TINY, small, seed=1, device=torch.device("cpu"), keep_model=True)
    net = result["net"].eval()
    path = tmp_path / "model.pt"
    path.write_bytes(model_file_bytes(net, {"test_acc": 0.5}))
    loaded = load_model(path)
    with torch.no_grad():
        assert torch.equal(net(small.val_x), loaded(small.val_x))
    assert torch.equal(get_prediction(small.val_x, net), get_prediction(small.val_x, loaded))
    assert evaluate_model.main([str(path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    assert evaluate_model.main([str(tmp_path / "junk.pt")]) == 2


def test_per_stage_depth_and_flip_tta():
    net = build_model(ModelConfig(channels=(4, 8), depth=(1, 2)))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 3
    with pytest.raises(ValueError, match="one entry per stage"):
        build_model(ModelConfig(channels=(4, 8), depth=(1, 2, 3)))
    tta = build_model(ModelConfig(channels=(4,), flip_tta=True)).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():  # eval mode predicts from both mirror images: the output cannot tell them apart
        assert torch.allclose(tta(x), tta(x.flip(3)), atol=1e-6)
        assert not torch.allclose(tta.logits(x), tta.logits(x.flip(3)), atol=1e-6)
    assert ModelConfig.from_dict(ModelConfig(depth=(1, 1, 2), flip_tta=True).to_dict()) == \
        ModelConfig(depth=(1, 1, 2), flip_tta=True)
