"""miniplaces/memory.py: freed blocks are reused instead of mapped afresh, and training computes the
same numbers either way (which is why the setting is not in the trial cache key)."""
from __future__ import annotations

import json
import mmap
import os
import platform
import subprocess
import sys

import pytest
from conftest import ROOT

from miniplaces import memory

PROBE = """
import hashlib, json, resource, sys
import torch
sys.path.insert(0, sys.argv[2])
from miniplaces.memory import reuse_freed_memory
from analyses.fashion_mnist.data import Split
from analyses.fashion_mnist.train import TrialConfig, evaluate, fit

applied = reuse_freed_memory() if sys.argv[1] == "on" else False
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x, y = torch.rand(1512, 1, 28, 28, generator=g), torch.randint(0, 10, (1512,), generator=g)
cfg = TrialConfig(epochs=1, depth=(1, 1, 2), augment="flip+crop", flip_tta=True)   # the baseline's network
result = fit(cfg, Split(x[:512], y[:512], x[512:], y[512:]), 0, torch.device("cpu"), keep_model=True)
net = result["net"].to(memory_format=torch.channels_last)
passes = []                      # validation passes like the one fit made (1 000 images: 100 MB activations)
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    evaluate(net, x[512:], y[512:], channels_last=True)
    passes.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
faults = min(passes)             # the steady state: a pass that found every block it needs already there
weights = hashlib.sha256(b"".join(v.numpy().tobytes() for v in net.state_dict().values()))
print(json.dumps({"applied": applied, "faults": faults, "weights": weights.hexdigest(),
                  "val_acc": result["val_acc"]}))
"""


def probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in memory.USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(ROOT)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (mallopt)")
def test_freed_blocks_are_reused_and_numbers_do_not_change():
    on, off = probe("on"), probe("off")
    assert on["applied"] is True and off["applied"] is False
    # Without the setting glibc maps the 100 MB blocks afresh for every pass and the kernel faults in
    # each page (61 000-128 000 faults a pass here); with it the blocks of earlier passes are handed
    # out again (a single pass after fit's own validation faulted 0, 3 062 or 6 125 pages).
    block_pages = 100_000_000 // mmap.PAGESIZE
    assert off["faults"] >= block_pages, off
    assert on["faults"] <= block_pages // 2, on
    assert on["weights"] == off["weights"] and on["val_acc"] == off["val_acc"]


def test_a_users_own_malloc_settings_win(monkeypatch):
    memory.reuse_freed_memory.cache_clear()
    try:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
        assert memory.reuse_freed_memory() is False
    finally:
        memory.reuse_freed_memory.cache_clear()
