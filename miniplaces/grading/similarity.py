"""Copied work: pairs of submissions whose models or notebook code are (nearly) the same.

Three kinds of likeness, each with its evidence, go to OUT/similar.csv and a section of grades.html.
They never change a grade: a pair is a lead for a person to read, not a verdict.

- ``same weights``: the model files hold the same tensors (a hash of every tensor's dtype, shape and
  bytes in the order stored, not of the file: another file name, another ``test_acc`` or another
  pickle layout does not hide it).
- ``same predictions``: the two models agree on almost every test image *and* make the same
  mistakes. Independent models that both pass 90 % agree on most images anyway (the easy ones), so
  the telling number is the mistakes: of the images either model gets wrong, the share both get
  wrong with the same wrong label. The thresholds below were set against independently trained
  models (benchmarks/similarity_calibration.py; the figures are in docs/grading.md).
- ``notebook code``: the code cells, tokenised with names, strings and numbers replaced by
  placeholders, cut into overlapping runs of ``SHINGLE`` tokens; the pair's Jaccard index of those
  runs. Renaming variables or reflowing whitespace and comments leaves it unchanged. Code every
  student got from the course (``--starter-notebook``) is left out before comparing.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import keyword
import tokenize
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

AGREEMENT_MIN = 0.98           # share of the 10 000 test images with the same predicted class
SAME_MISTAKES_MIN = 0.80       # of the images either model gets wrong, share wrong with the same label
CODE_JACCARD_MIN = 0.80        # Jaccard index of the normalised code's shingles
SHINGLE = 10                   # tokens per shingle: a line or two of code
SAMPLE_MOD = 4                 # keep the shingles whose hash is 0 mod this (the same ones in every notebook)
MAX_SHINGLES = 20_000          # bounds the child's answer (~200 KB) for a huge notebook
MIN_SHINGLES = 20              # fewer than this (a near-empty notebook) is not compared
COLUMNS = ("a", "b", "kind", "evidence")


def weights_digest(state_dict: dict[str, Any]) -> str:
    """SHA-256 of the tensors' dtypes, shapes and bytes, in the order stored (names left out);
    "" for tensors that cannot be read as bytes."""
    import torch

    h = hashlib.sha256()
    try:
        for value in state_dict.values():
            if isinstance(value, torch.Tensor):
                h.update(f"{value.dtype}{tuple(value.shape)}".encode())
                h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy
    except (RuntimeError, TypeError, ValueError, MemoryError):  # a sparse, quantized or odd tensor
        return ""
    return h.hexdigest()


class _Predictions:
    """The classes a network predicted, batch after batch, recorded by a forward hook."""

    def __init__(self):
        self.batches: list[Any] = []

    def __call__(self, module, inputs, output) -> None:
        self.batches.append(output.detach().argmax(1).cpu())

    def digits(self) -> str:
        return "".join(str(int(c)) for batch in self.batches for c in batch)


@contextlib.contextmanager
def recording_predictions(net):
    """Record the predicted class of every image the network sees inside the block (the re-scoring
    pass itself, so the predictions cost no second pass over the test set)."""
    recorder = _Predictions()
    handle = net.register_forward_hook(recorder)
    try:
        yield recorder
    finally:
        handle.remove()


def take(likeness: dict[str, Any], answer: dict[str, Any]) -> None:
    """Keep the child's weights digest and predictions if they have the expected form."""
    weights, predictions = answer.get("weights"), answer.get("predictions")
    if isinstance(weights, str) and len(weights) == 64:
        likeness["weights"] = weights
    if isinstance(predictions, str) and len(predictions) <= 10_000 and predictions.isdigit():
        likeness["predictions"] = predictions


def _digits(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8)


def prediction_likeness(a: str | np.ndarray, b: str | np.ndarray,
                        labels: str | np.ndarray) -> tuple[float, float]:
    """(agreement, same mistakes) of two models' predicted classes, one digit per test image."""
    a, b, labels = (_digits(v) if isinstance(v, str) else v for v in (a, b, labels))
    n = min(len(a), len(b), len(labels))
    a, b, labels = a[:n], b[:n], labels[:n]
    same = a == b
    wrong = (a != labels) | (b != labels)
    n_wrong = int(wrong.sum())
    return float(same.mean()) if n else 0.0, (int((same & wrong).sum()) / n_wrong if n_wrong else 1.0)


def _normalised_tokens(source: str) -> list[str]:
    """The code's tokens with identifiers, strings and numbers as placeholders; comments dropped.
    Lines of IPython magics and shell escapes (``%``, ``!``) are left out; code that does not
    tokenise keeps the tokens before the error."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type == tokenize.NAME:
                out.append(tok.string if keyword.iskeyword(tok.string) else "N")
            elif tok.type == tokenize.STRING:
                out.append("S")
            elif tok.type == tokenize.NUMBER:
                out.append("0")
            elif tok.type == tokenize.OP:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        pass
    return out


def code_shingles(sources: Iterable[str]) -> list[int]:
    """A sample of the hashed shingles of these code cells: the same sample in every notebook, so
    the Jaccard index of two samples estimates that of the whole sets."""
    tokens: list[str] = []
    for source in sources:
        tokens += _normalised_tokens(source)
    kept = set()
    for i in range(len(tokens) - SHINGLE + 1):
        h = zlib.crc32(" ".join(tokens[i:i + SHINGLE]).encode())
        if h % SAMPLE_MOD == 0:
            kept.add(h)
    return sorted(kept)[:MAX_SHINGLES]


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def find_pairs(rows: list[dict[str, Any]], likeness: list[dict[str, Any]], labels: str,
               starter: set[int] = frozenset()) -> list[dict[str, str]]:
    """The flagged pairs, in submission order. ``likeness[i]`` holds row i's ``weights``,
    ``predictions`` and ``shingles`` (any may be missing); ``starter`` the starter notebook's."""
    pairs = []
    truth = _digits(labels)
    predicted = [_digits(x["predictions"]) if x.get("predictions") else None for x in likeness]
    for (i, a), (j, b) in itertools.combinations(enumerate(likeness), 2):
        names = (rows[i]["name"], rows[j]["name"])
        if a.get("weights") and a.get("weights") == b.get("weights"):
            pairs.append((*names, "same weights", f"identical tensors (SHA-256 {a['weights'][:12]})"))
        elif predicted[i] is not None and predicted[j] is not None:
            agreement, same_mistakes = prediction_likeness(predicted[i], predicted[j], truth)
            if agreement >= AGREEMENT_MIN and same_mistakes >= SAME_MISTAKES_MIN:
                pairs.append((*names, "same predictions",
                              f"agree on {100 * agreement:.2f} % of the test images; "
                              f"{100 * same_mistakes:.1f} % of their mistakes are the same wrong label"))
        code_a, code_b = set(a.get("shingles", ())) - starter, set(b.get("shingles", ())) - starter
        if min(len(code_a), len(code_b)) >= MIN_SHINGLES:
            index = jaccard(code_a, code_b)
            if index >= CODE_JACCARD_MIN:
                pairs.append((*names, "notebook code",
                              f"{100 * index:.0f} % of the normalised code is shared (Jaccard index of "
                              f"{SHINGLE}-token runs, names and literals replaced)"))
    return [dict(zip(COLUMNS, p)) for p in pairs]


def test_labels(data_dir) -> str:
    """The FashionMNIST test labels, one digit per image (the predictions' truth)."""
    from analyses.fashion_mnist import data as fdata

    path = fdata._find(data_dir, fdata.FILES["test_labels"])
    return "".join(str(int(c)) for c in fdata.read_idx(path)) if path else ""


def add_arguments(p) -> None:
    p.add_argument("--starter-notebook", type=Path,
                   help="the notebook the course handed out: its code is left out when comparing "
                        "students' notebooks for copied code")


def starter_from_args(p, a) -> frozenset[int]:
    if a.starter_notebook is None:
        return frozenset()
    from miniplaces.grading import notebook_check

    try:
        nb = notebook_check.load(a.starter_notebook)
    except ValueError as exc:
        p.error(f"--starter-notebook {a.starter_notebook}: {exc}")
    return frozenset(code_shingles(notebook_check.code_sources(nb)))
