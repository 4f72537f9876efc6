#!/usr/bin/env python3
"""miniplaces-report: run every analysis of the Miniplaces problem set and render the report.

Outputs in --out: report.html (self-contained), report.pdf, results.json, figures/*.png and the
FashionMNIST model file.

Exit codes: 0 success; 1 failure while running; 2 bad input or missing requirement; 3 a --gate failed
(every output written).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from miniplaces.ci import compare, gates
from miniplaces.config import ARCHS, PRESETS, RunConfig, default_cache_dir
from miniplaces.errors import RunFailure, UserError
from miniplaces.inputs.checkpoint import untrained_warning
from miniplaces.memory import reuse_freed_memory
from miniplaces.report.sections import model_section, names, needing_places, running
from miniplaces.report.wording import series

VERSION = "0.1.0"
log = logging.getLogger("miniplaces")


def path_arg(text: str) -> Path:
    """A path option's value; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def parse_args(argv: list[str] | None = None) -> RunConfig:
    p = argparse.ArgumentParser(
        prog="generate_report.py", description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 success, 1 failure while running, 2 bad input or missing requirement, "
               "3 a --gate failed (every output is still written), 130 interrupted. "
               "Graders: 'generate_report.py grade --help' checks a folder of submission zips.")
    p.add_argument("--out", type=path_arg, default=Path("reports"),
                   help="output directory (default: reports/)")
    p.add_argument("--preset", choices=list(PRESETS), default="standard",
                   help="how much compute: quick (CI smoke run), standard (full answers), full (larger "
                        "grids, repeated seeds)")
    p.add_argument("--only", nargs="+", choices=names(), metavar="SECTION",
                   help=f"run only these sections ({', '.join(names())})")
    p.add_argument("--skip", nargs="+", choices=names(), metavar="SECTION", default=[],
                   help="skip these sections")
    p.add_argument("--weights", type=path_arg,
                   help="Places365 checkpoint (resnet50_places365.pth.tar); default: cache, then download")
    p.add_argument("--categories", type=path_arg,
                   help="categories_places365.txt "
                        "(default: beside the weights, then the cache, then download)")
    p.add_argument("--arch", choices=ARCHS, default="resnet50", help="ResNet architecture of the checkpoint")
    p.add_argument("--images", type=path_arg, nargs="+", default=[], metavar="PATH",
                   help="scene images to analyse in addition to the built-in scenes")
    p.add_argument("--replace-images", action="store_true", help="use only --images, not the built-in scenes")
    p.add_argument("--focus-image", metavar="NAME",
                   help="scene shown in the main body of Problems 2 and 3 (file name or id, e.g. rocket.jpg; "
                        "default: the first); every scene is in the appendix")
    p.add_argument("--image-size", type=int, default=256,
                   help="side of the square network input (problem set: 256)")
    p.add_argument("--data-dir", type=path_arg, help="folder with the four FashionMNIST IDX .gz files")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run the networks")
    p.add_argument("--seed", type=int, default=0, help="random seed of every analysis")
    p.add_argument("--strict", action="store_true", help="exit 2 instead of using an untrained demo model")
    p.add_argument("--no-pdf", dest="pdf", action="store_false", help="do not render report.pdf")
    p.add_argument("--no-notebook", dest="notebook", action="store_false",
                   help="do not write report.ipynb (the notebook with its cells run; about 30 s on 2 cores)")
    p.add_argument("--offline", action="store_true", help="never try to download weights, categories or data")
    p.add_argument("--cache-dir", type=path_arg, default=default_cache_dir(),
                   help="result cache (default: %(default)s)")
    p.add_argument("--no-cache", dest="use_cache", action="store_false",
                   help="recompute everything, write no cache")
    p.add_argument("--filter-layers", nargs="+", default=[], metavar="LAYER",
                   help="conv layers for Problem 1 (default: preset's, e.g. conv1 layer1.0.conv2)")
    p.add_argument("--sweep-limit", type=int,
                   help="largest number of ablated units in the Problem 2d sweep (default 100)")
    p.add_argument("--grid", type=path_arg, help="FashionMNIST grid file (TOML) instead of the preset's grid")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="run FashionMNIST trials here or on Ray Tune")
    p.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    p.add_argument("--submission", metavar="NAME",
                   help="also write OUT/NAME.zip with report.html, report.pdf and the model file")
    p.add_argument("--allow-demo-submission", action="store_true",
                   help="let --submission pack a report made with demo or untrained weights, or with the "
                        "quick (smoke-test) preset")
    p.add_argument("--gate", action="append", default=[], metavar="NAME[=VALUE]",
                   help="fail the finished run with exit code 3 unless it holds (repeatable): "
                        + "; ".join(f"{name}: {what}" for name, what in gates.GATES.items()))
    p.add_argument("--compare", type=Path, metavar="PATH",
                   help="an earlier results.json (or its folder): add 'Changes since' and write changes.json")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors")
    a = p.parse_args(argv)
    sections = tuple(s for s in (a.only or names()) if s not in a.skip)
    if not sections:
        p.error("--only/--skip leave no section to run")
    for option, value, (least, most) in (("--image-size", a.image_size, (32, 2048)),
                                         ("--sweep-limit", a.sweep_limit, (1, 2048)),   # layer4's units
                                         ("--seed", a.seed, (0, 2**31 - 1))):
        if value is not None and not least <= value <= most:
            p.error(f"{option} {value}: must be from {least} to {most}")
    per_scene = [s for s in running(names()) if s.per_scene]
    if a.focus_image and not {s.name for s in per_scene} & set(sections):
        p.error(f"--focus-image picks a scene of Problems {series([s.problem for s in per_scene])}: "
                f"run the {series([s.name for s in per_scene], 'or')} section")
    for spec in a.gate:
        try:
            why = gates.missing_requirement(gates.parse(spec), sections, a.compare is not None)
        except ValueError as exc:
            why = str(exc)
        if why:
            p.error(why)
    if a.submission:
        from miniplaces.report.submission import check_name
        try:
            check_name(a.submission)
        except UserError as exc:
            p.error(str(exc))
        model = model_section()
        if model is None or model.name not in sections:
            p.error(f"--submission needs the {model.name if model else 'model'} section (the model file goes "
                    "in the zip)")
        if not a.pdf:
            p.error("--submission needs report.pdf: drop --no-pdf")
        if not a.notebook:
            p.error("--submission needs the notebook the problem set asks for: drop --no-notebook")
        if a.preset == "quick" and not a.allow_demo_submission:
            p.error("--submission refuses the quick preset: it is a smoke test whose model is below the "
                    "problem set's 90 %; use --preset standard, or --allow-demo-submission if you mean it")
    return RunConfig(out=a.out, preset=a.preset, sections=sections, weights=a.weights,
                     categories=a.categories, notebook=a.notebook,
                     arch=a.arch, images=tuple(a.images), replace_images=a.replace_images,
                     focus_image=a.focus_image, image_size=a.image_size,
                     data_dir=a.data_dir, device=a.device, seed=a.seed, strict=a.strict, pdf=a.pdf,
                     offline=a.offline, cache_dir=a.cache_dir, use_cache=a.use_cache,
                     filter_layers=tuple(a.filter_layers), sweep_limit=a.sweep_limit, grid=a.grid,
                     executor=a.executor, ray_address=a.ray_address, submission=a.submission,
                     allow_demo_submission=a.allow_demo_submission, verbosity=a.verbose - a.quiet,
                     gates=tuple(a.gate), compare=a.compare)


def setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity >= 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbosity >= 1 else "%(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("PIL").setLevel(logging.WARNING)


def run(config: RunConfig) -> dict:
    """Check every input, provision the Places365 model, compute the sections, render the report, pack
    the submission; return results. Nothing in --out is removed before every input is known good."""
    from miniplaces.cache import Cache
    from miniplaces.outdir import lock_out_dir, new_run_id, remove_stale_reports
    from miniplaces.report.context import RunContext

    start, run_id = time.perf_counter(), new_run_id()
    out = Path(config.out)
    with lock_out_dir(out):
        # read before anything is written: --compare may name this --out's results.json
        previous = compare.load_previous(config.compare) if config.compare else None
        ctx = RunContext(config, Cache(config.cache_dir, enabled=config.use_cache))
        ctx.cache.remove_leftovers()
        modules = check(config, ctx)
        steps, model_json = provision(config, ctx)
        remove_stale_reports(out)   # inputs are valid: from here on the out dir holds this run's files only
        results, sections = compute(modules, ctx, steps)
        results = record(config, ctx, results, model_json, steps, start, run_id)
        changes = compare.compare(results, *previous) if previous else None
        if changes:
            results["changes"] = {"file": "changes.json", **{k: changes[k] for k in compare.SUMMARY_KEYS}}
        if config.gates:
            results["gates"] = gates.evaluate([gates.parse(g) for g in config.gates], results, sections,
                                              changes)
        failure = render_outputs(config, ctx, results, sections, changes, out)
        results["run"]["total_seconds"] = time.perf_counter() - start
        pack(config, results, changes, out)
        if failure:
            raise failure
        return results


def check(config: RunConfig, ctx) -> dict:
    """The glue modules of the sections to run, after each has checked its inputs (a bad grid file or
    --focus-image stops the run before any work)."""
    modules = {s.name: s.load() for s in running(config.sections)}
    if ctx.per_scene_sections():   # decode the scenes first: with no usable image nothing runs
        ctx.scenes()
    for module in modules.values():
        if hasattr(module, "check"):
            module.check(ctx)
    if config.focus_image:
        check_focus(config.focus_image, ctx.scenes().scenes)
    return modules


def provision(config: RunConfig, ctx) -> tuple[list[dict], dict | None]:
    """Load the Places365 network when a running section needs it: first, so that --strict stops before
    any work. Returns the steps so far and the model's results.json entry."""
    if not needing_places(config.sections):
        return [], None
    t = time.perf_counter()
    model_json = ctx.model_json()
    if config.submission:
        from miniplaces.report.submission import check_allowed
        check_allowed(model_json["demo"], config.allow_demo_submission)
    return [{"name": "load Places365 model", "seconds": time.perf_counter() - t, "cached": False}], model_json


def compute(modules: dict, ctx, steps: list[dict]) -> tuple[dict, list[dict]]:
    """Run each section: results.json's entry per section and what the templates show of it."""
    results, sections = {}, []
    for section in running(list(modules)):
        log.info("== %s", section.title)
        done = modules[section.name].run(ctx)
        steps.append({"name": section.name, "seconds": done.seconds, "cached": done.cached})
        appendix = section.appendix
        sections.append({"name": section.name, "number": section.problem, "title": section.title,
                         "toc": [{"id": section.anchor_of(q), "label": q.toc} for q in section.questions],
                         "appendix": appendix and {"anchor": appendix.anchor, "title": appendix.title,
                                                   "template": appendix.template},
                         "input_label": section.input_label, "template": section.template_name,
                         "data": done.data, "figures": done.figures, "notes": done.notes})
        results[section.name] = {k: v for k, v in done.data.items() if k != "scenes"}
        merge_scenes(results, done.data.get("scenes", []))
    return results, sections


def record(config: RunConfig, ctx, results: dict, model_json: dict | None, steps: list[dict], start: float,
           run_id: str) -> dict:
    """results.json's layout: schema, the run's provenance, the model, then each section's answers."""
    from miniplaces.report.provenance import run_info

    info = {"run_id": run_id, **run_info(config, ctx, model_json, steps, start, VERSION)}
    return {"schema_version": 1, "run": info, "model": model_json, **results}


def render_outputs(config: RunConfig, ctx, results: dict, sections: list[dict], changes: dict | None,
                   out: Path) -> Exception | None:
    """report.html, report.pdf and report.ipynb; a failed notebook cell is returned, to end the run with
    exit 1 once everything else is written (no work is lost)."""
    from miniplaces.report import render

    skipped = [{"name": s, "why": "--only/--skip"} for s in names() if s not in config.sections]
    context = render_context(results, sections, skipped, ctx.warnings, config.focus_image, changes)
    steps = results["run"]["steps"]
    t = time.perf_counter()
    render.write_html(context, out)
    steps.append({"name": "render HTML", "seconds": time.perf_counter() - t, "cached": False})
    if config.pdf:
        t = time.perf_counter()
        render.write_pdf(context, out)
        steps.append({"name": "render PDF", "seconds": time.perf_counter() - t, "cached": False})
    return write_notebook(config, results, out, ctx) if config.notebook else None


def pack(config: RunConfig, results: dict, changes: dict | None, out: Path) -> None:
    """results.json (last of the report's files: its presence means the run finished), changes.json and
    the submission zip."""
    from miniplaces import atomic

    if changes:
        atomic.write_json(out / "changes.json", changes)
    atomic.write_json(out / "results.json", results)
    if config.submission:
        from miniplaces.report.submission import write_submission
        write_submission(out, config.submission, results, config.allow_demo_submission)


def write_notebook(config: RunConfig, results: dict, out: Path, ctx) -> Exception | None:
    """Write report.ipynb with its cells run and record it in results; a failed cell is returned, to
    end the run with exit 1 once results.json and the report are written (no work is lost)."""
    from miniplaces.report import notebook

    t = time.perf_counter()
    log.info("== Notebook (%s, its cells run in a Jupyter kernel)", notebook.FILE)
    scenes = ctx.scenes().scenes if ctx.per_scene_sections() else []
    try:
        results["notebook"] = notebook.write(results, out, scenes, ctx.cache)
        failure = None
    except notebook.NotebookError as exc:
        results["notebook"] = {"file": None, "error": str(exc)}
        failure = RunFailure(f"report.ipynb: {exc}; report.html and results.json are written")
    results["run"]["steps"].append({"name": "run notebook", "seconds": time.perf_counter() - t,
                                    "cached": bool(results["notebook"].get("cached"))})
    return failure


def check_focus(name: str, scenes) -> None:
    """--focus-image must name one of the scenes (by file name or id)."""
    if not any(name in (scene.name, scene.id) for scene in scenes):
        raise UserError(f"--focus-image {name}: no such scene; the scenes are "
                        + ", ".join(scene.name for scene in scenes))


def render_context(results: dict, sections: list[dict], skipped: list[dict], warnings: list[str],
                   focus_image: str | None, changes: dict | None = None) -> dict:
    """What the templates display: results.json, the sections, every answer sentence and source listing."""
    from miniplaces.report import answers, listings, render

    focus = answers.focus_scene(results, focus_image)
    if focus is not None:
        results["run"]["focus_scene"] = focus["image"]
    model, scenes, gates = results["model"], results.get("scenes", []), results.get("gates", [])
    return {"run": results["run"], "model": model, "sections": sections, "skipped": skipped,
            "warnings": warnings, "demo": answers.untrained_tag(model),
            "answers": answers.build(results, focus_image),
            "listings": listings.build(results["run"]["sections"]),
            "scenes": scenes, "focus": focus,
            "section_data": {s["name"]: s["data"] for s in sections},
            "all_figures": {k: v for s in sections for k, v in s["figures"].items()},
            "gates": gates, "changes": changes,
            "contents": render.table_of_contents(sections, scenes, gates, changes)}


def merge_scenes(results: dict, scenes: list[dict]) -> None:
    """Sections that answer per scene (units, cam) each add their keys to results["scenes"][i]."""
    by_image = {scene["image"]: scene for scene in results.setdefault("scenes", [])}
    for scene in scenes:
        if scene["image"] in by_image:
            by_image[scene["image"]].update(scene)
        else:
            results["scenes"].append(dict(scene))
            by_image[scene["image"]] = results["scenes"][-1]
    if not results["scenes"]:
        del results["scenes"]


def print_summary(results: dict, out: Path) -> None:
    run_ = results["run"]
    lines = [f"done in {run_['total_seconds']:.1f}s"]
    for step in run_["steps"]:
        lines.append(f"  {step['name']:<24} {step['seconds']:7.2f}s{'  (cache)' if step['cached'] else ''}")
    lines.append(f"  cache: {len(run_['cache']['hits'])} hits, {len(run_['cache']['misses'])} computed")
    if warning := untrained_warning(results.get("model")):
        lines.append(f"  WARNING: {warning}; see the report banner")
    if results.get("model"):
        lines.append(f"  Places365 weights: {results['model']['provenance']['label']}")
    lines.append(f"  outputs: {out / 'report.html'}, {out / 'results.json'}"
                 + (f", {out / 'report.pdf'}" if (out / "report.pdf").exists() else "")
                 + (f", {out / 'report.ipynb'}" if (results.get("notebook") or {}).get("file") else "")
                 + (f", {out / 'changes.json'}" if "changes" in results else ""))
    if "changes" in results:
        lines.append(f"  {compare.summary(results['changes'])}")
    lines += [f"  gate {v['gate']}: {'passed' if v['passed'] else 'FAILED'} ({v['text']})"
              for v in results.get("gates", [])]
    print("\n".join(lines), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:  # the grader's command: generate_report.py grade submissions/ --out grades/
        from miniplaces.grading.grade import main as grade

        setup_logging(0)
        return grade(argv[1:])
    config = parse_args(argv)
    setup_logging(config.verbosity)
    reuse_freed_memory()  # the Places model and in-process training reuse buffers (miniplaces/memory.py)
    try:
        results = run(config)
    except (UserError, RunFailure) as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted: finished steps are kept in the cache; rerun to resume")
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, traceback with -v
        if config.verbosity >= 1:
            log.exception("failed")
        log.error("failed: %s: %s (rerun with -v for the traceback)", type(exc).__name__, exc)
        return 1
    if config.verbosity >= 0:
        print_summary(results, Path(config.out))
    failures = gates.failed(results.get("gates", []))
    for verdict in failures:   # one line each, last in the log: what a CI reader looks for
        log.error("gate failed: %s: %s", verdict["gate"], verdict["text"])
    return gates.EXIT_CODE if failures else 0


if __name__ == "__main__":
    sys.exit(main())
