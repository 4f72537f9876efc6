#!/usr/bin/env python3
"""Time Problem 3d's faithfulness measurement for one scene: what one scene costs per preset.

An untrained ResNet-50 (365 classes; the cost does not depend on the weights) on one 256 x 256
input: the CAM, Grad-CAM and Grad-CAM++ maps, then deletion and insertion curves of those maps, the
centre prior and the random maps, with each preset's steps and seeds (CAM.presets in
miniplaces/report/sections). Prints the
wall-clock and CPU seconds per part, median over --repeats, for the network's weights in NCHW and in
the NHWC (channels-last) layout that ``places_model.provision`` uses, side by side with their ratio.
Pin the cores to measure "2 cores":

    taskset -c 0,1 .venv/bin/python benchmarks/bench_cam_faithfulness.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analyses import cam  # noqa: E402
from analyses import cam_faithfulness as ff
from analyses.feature_maps import chop, fc_params  # noqa: E402
from miniplaces.report.sections import CAM  # noqa: E402

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def one_scene(model, x, steps: int, seeds: int, batch_size: int) -> dict[str, float]:
    size = tuple(x.shape[-2:])
    times, cls = {}, 0

    def timed(name, work):
        wall, cpu = time.perf_counter(), time.process_time()
        out = work()
        times[name], times[name + " cpu"] = time.perf_counter() - wall, time.process_time() - cpu
        return out

    def maps():
        with torch.no_grad():
            features = chop(model)(x)[0].numpy()
        return {"CAM": cam.display_cam(cam.raw_cams(features, fc_params(model)[0], [cls])[0], size),
                **ff.gradient_maps(model, model.layer4, x, cls)}

    m = timed("maps", maps)
    m[ff.CENTRE] = ff.centre_prior(size)
    m.update(ff.random_maps((size[0] // 32, size[1] // 32), size, range(seeds)))
    timed("curves", lambda: ff.deletion_insertion(model, x, cls, m, steps, batch_size=batch_size))
    times["total"] = times["maps"] + times["curves"]
    times["passes"] = len(m) * 2 * (steps - 1) + 2
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--presets", nargs="+", default=["quick", "standard"])
    p.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=365).eval()
    x = torch.randn(1, 3, 256, 256)
    print(f"{a.threads} threads, torch {torch.__version__}")
    for preset in a.presets:
        f = CAM.presets[preset]["faithfulness"]
        totals = {}
        for layout in a.layouts:
            laid_out = model.to(memory_format=LAYOUTS[layout])
            runs = [one_scene(laid_out, x, f["steps"], f["random_seeds"], a.batch_size)
                    for _ in range(a.repeats)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            totals[layout] = med["total"]
            each = ", ".join(f"{r['total']:.1f}" for r in runs)
            print(f"{preset}, {layout}: {f['steps']} steps, {f['random_seeds']} seeds, {med['passes']:.0f} "
                  f"curve passes: maps {med['maps']:.1f} s (cpu {med['maps cpu']:.1f}), curves "
                  f"{med['curves']:.1f} s (cpu {med['curves cpu']:.1f}), total {med['total']:.1f} s "
                  f"per scene (median of {a.repeats}; each: {each})")
        if len(totals) == 2:
            print(f"{preset}: channels_last is {totals['nchw'] / totals['channels_last']:.2f}x NCHW's speed")


if __name__ == "__main__":
    main()
