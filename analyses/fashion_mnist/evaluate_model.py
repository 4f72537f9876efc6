"""Load a saved FashionMNIST model and print its test accuracy.

    python -m analyses.fashion_mnist.evaluate_model reports/fashion_mnist_model.pt [--data-dir DIR]

Exit codes: 0 printed, 2 bad model file or no data.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

from . import data as fdata
from .model import load_model
from .summary import accuracy_interval
from .train import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analyses.fashion_mnist.evaluate_model",
                                description="Print the FashionMNIST test accuracy of a saved model file.")
    p.add_argument("model", type=Path, help="the .pt file written by generate_report.py")
    p.add_argument("--data-dir", type=Path,
                   help="folder with the four IDX files (default: the Debian package's)")
    a = p.parse_args(argv)
    try:
        net = load_model(a.model)
        data = fdata.load(fdata.locate(a.data_dir, None, offline=True))
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError, fdata.DataError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    acc, n = evaluate(net, data.test_x, data.test_y).accuracy, len(data.test_y)
    low, high = accuracy_interval(acc, n)
    print(f"test accuracy {100 * acc:.2f} % ({round(acc * n)}/{n}; exact 95 % interval "
          f"{100 * low:.2f} to {100 * high:.2f} %) of {a.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
