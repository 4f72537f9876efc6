"""Copied work: the same weights under another name, near-identical predictions, renamed notebook code."""
from __future__ import annotations

import csv
import io

import notebooks
import pytest
import torch
from test_grade import MODEL, tiny_model, write_zip

import generate_report
from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import model_file_bytes
from miniplaces.grading import similarity


def test_renamed_and_reflowed_code_is_the_same_and_other_code_is_not():
    original = similarity.code_shingles([notebooks.TRAIN_A])
    copy = similarity.code_shingles([notebooks.rename(notebooks.TRAIN_A)])
    other = similarity.code_shingles([notebooks.TRAIN_B])
    assert len(original) >= similarity.MIN_SHINGLES
    assert similarity.jaccard(set(original), set(copy)) == 1.0
    assert similarity.jaccard(set(original), set(other)) < 0.2


def test_magics_and_broken_code_do_not_stop_tokenising():
    shingles = similarity.code_shingles(["%matplotlib inline\n!pip install x\n" + notebooks.TRAIN_A,
                                         "def broken(:\n  ("])
    assert set(similarity.code_shingles([notebooks.TRAIN_A])) <= set(shingles)


def test_starter_code_is_left_out(tmp_path):
    """Two honest students who both kept the course's starter code are not a pair once it is left out."""
    handout = [notebooks.TRAIN_A, notebooks.TRAIN_B]
    starter = set(similarity.code_shingles(handout))
    a = {"shingles": similarity.code_shingles([*handout, notebooks.CODE[1]])}
    b = {"shingles": similarity.code_shingles([*handout, notebooks.CODE[4]])}
    rows = [{"name": "a"}, {"name": "b"}]
    assert [p["kind"] for p in similarity.find_pairs(rows, [a, b], "")] == ["notebook code"]
    assert similarity.find_pairs(rows, [a, b], "", frozenset(starter)) == []


def test_prediction_likeness_counts_agreement_and_same_mistakes():
    labels = "0123456789"
    assert similarity.prediction_likeness("0123456789", "0123456789", labels) == (1.0, 1.0)
    agreement, same = similarity.prediction_likeness("1123456780", "1123456789", labels)
    assert agreement == 0.9 and same == 0.5          # both wrong on image 0 (same label), one on image 9


def test_the_weights_digest_ignores_names_but_not_values():
    net = tiny_model()
    state = net.state_dict()
    renamed = {f"module.{k}": v.clone() for k, v in state.items()}
    assert similarity.weights_digest(state) == similarity.weights_digest(renamed)
    changed = {k: v.clone() for k, v in state.items()}
    next(iter(changed.values())).view(-1)[0] += 1e-6
    assert similarity.weights_digest(state) != similarity.weights_digest(changed)


@pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")
def test_grade_flags_copies_and_not_honest_pairs(tmp_path):
    alice_net = tiny_model(0)
    nudged = tiny_model(0)
    with torch.no_grad():
        for p in nudged.parameters():
            p.add_(1e-6 * torch.randn_like(p))       # other weights, the same predictions
    nb = notebooks.with_code
    submissions = {
        "alice": {MODEL: model_file_bytes(alice_net, {"test_acc": 0.93}),
                  "alice.ipynb": nb(notebooks.TRAIN_A)},
        # alice's model file under another name and another claim: other bytes, the same tensors
        "bob": {"bobs_model.pth": model_file_bytes(alice_net, {"test_acc": 0.91}),
                "bob.ipynb": nb(notebooks.TRAIN_B)},
        "carol": {MODEL: model_file_bytes(nudged), "carol.ipynb": nb(notebooks.CODE[2] * 6)},
        "dave": {MODEL: model_file_bytes(tiny_model(3)),
                 "dave.ipynb": nb(notebooks.rename(notebooks.TRAIN_A))},
        "erin": {MODEL: model_file_bytes(tiny_model(4)), "erin.ipynb": nb(notebooks.CODE[3] * 6)},
    }
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, files in submissions.items():
        write_zip(folder / f"{name}.zip", {k: notebooks.to_bytes(v) if k.endswith(".ipynb") else v
                                            for k, v in files.items()})
    out = tmp_path / "grades"
    assert generate_report.main(["grade", str(folder), "--out", str(out)]) == 0
    pairs = {(r["a"], r["b"]): r for r in csv.DictReader(io.StringIO((out / "similar.csv").read_text()))}
    assert {k: r["kind"] for k, r in pairs.items()} == {
        ("alice", "bob"): "same weights", ("alice", "carol"): "same predictions",
        ("bob", "carol"): "same predictions", ("alice", "dave"): "notebook code"}
    assert "100 % of the normalised code" in pairs[("alice", "dave")]["evidence"]
    grades = {r["name"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert grades["alice"]["accuracy"] == grades["bob"]["accuracy"]     # likeness never changes a grade
    assert all(g["verdict"] == "no credit" and g["final"] == "0.0000" for g in grades.values())
    html = (out / "grades.html").read_text()
    assert "Possibly copied work: 4 pairs" in html and "same predictions" in html


def test_an_unreadable_starter_notebook_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_zip(tmp_path / "a.zip", {"x": b"x"})
    (tmp_path / "starter.ipynb").write_text("{oops")
    with pytest.raises(SystemExit) as exit_info:
        generate_report.main(["grade", "a.zip", "--starter-notebook", "starter.ipynb"])
    assert exit_info.value.code == 2 and "not valid JSON" in capsys.readouterr().err
