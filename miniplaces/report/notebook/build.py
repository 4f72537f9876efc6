"""The notebook view of a run: the problem set's structure, the report's answers, the code that ran.

The notebook follows the sections' descriptions (``miniplaces.report.sections``): a heading per
problem, the problem set's words per sub-question, and a code cell with the question's listed
functions. ``CODE`` adds, per sub-question, the other definitions its cell shows (copied from the
running code by ``source.Program``, with everything they need) and the lines that call them. The
answer text is the report's (``answers.build``); the Places cells recompute their figures live;
Problem 4 loads the saved model and scores it, and shows the run's training history and grid as
recorded data, or retrains the final configuration with ``RETRAIN``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from miniplaces.inputs.checkpoint import untrained_warning
from miniplaces.report import answers as answer_text
from miniplaces.report import sections
from miniplaces.report.notebook.source import Program
from miniplaces.report.wording import capital

CELLS = "miniplaces.report.notebook.cells"
FILTERS, FMAPS, CAM, ABLATION = "analyses.filters", "analyses.feature_maps", "analyses.cam", \
    "analyses.unit_ablation"
FASHION = "analyses.fashion_mnist"
IMAGES_DIR = "notebook_images"     # the scenes, beside the notebook, as the lossless RGB the report used


@dataclass(frozen=True)
class Code:
    """A sub-question's code cell beyond its listed functions (``Question.listed``)."""

    defines: tuple[str, ...] = ()     # more definitions the cell shows, after the listed ones
    calls: str = ""                   # what the cell then runs
    first: tuple[str, ...] = ()       # definitions that read better before the listed ones
    setup: str = ""                   # a cell before the question's: its problem's inputs
    setup_defines: tuple[str, ...] = ()

    def definitions(self, question: sections.Question) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.first, *question.listed, *self.defines)))


PLACES_SETUP = Code(setup="""\
model = load_places_model(WEIGHTS, ARCH, DEMO_SEED).to(DEVICE)
labels = load_categories(CATEGORIES)
images = {Path(p).stem: load_image(p) for p in IMAGES}
focus = images[FOCUS_IMAGE] if FOCUS_IMAGE in images else None
print(f'{ARCH}: {"untrained (demo)" if WEIGHTS is None else WEIGHTS}; {len(images)} scenes')
""", setup_defines=(f"{CELLS}.load_places_model", f"{CELLS}.load_categories", f"{CELLS}.load_image"))

CODE: dict[str, Code] = {
    "1a": Code(calls="""\
print(normalize_tensor(model.conv1.weight).aminmax())
"""),
    "1b": Code(defines=(f"{CELLS}.visualize_filters",), calls="""\
for layer in FILTER_LAYERS:
    visualize_filters(model, layer)
"""),
    "2a": Code(defines=(f"{CELLS}.generate_featuremap_unit", f"{CELLS}.show_maps"), calls="""\
print(chop(model)(preprocess(focus, IMAGE_SIZE).to(DEVICE)).shape)
show_maps(focus, {'unit 300': generate_featuremap_unit(model, focus, 300, IMAGE_SIZE)})
"""),
    "2b": Code(defines=(f"{CELLS}.print_table",), calls="""\
for concept, found in RECORDED['units'].items():   # each on the scene with the most of it
    scene = images[found['scene']]
    print_table(found['units'], f"{concept}: the units with the highest IoU over the annotated scenes "
                f"(recorded by the report run); maps on {found['scene']}:")
    if not found['units']:
        print("  none: no unit's thresholded region overlaps the mask (IoU 0 for every unit)")
    maps = {f'{concept}: unit {u["unit"]}': generate_featuremap_unit(model, scene, u['unit'], IMAGE_SIZE)
            for u in found['units'][:3]}
    if concept == 'mountain':
        maps["the problem set's unit 300"] = generate_featuremap_unit(model, scene, 300, IMAGE_SIZE)
    if maps:
        show_maps(scene, maps, IMAGE_SIZE)
"""),
    "2c": Code(defines=(f"{CELLS}.ablate_and_compare",), calls="""\
pooled_maps, fc_weight, fc_bias = ablate_and_compare(model, focus, labels, IMAGE_SIZE)
"""),
    "2d": Code(defines=(f"{ABLATION}.exact_minimum",), calls="""\
fewest = exact_minimum(pooled_maps.pooled, fc_weight, fc_bias)
print(f'fewest units: {fewest.k} {[int(u) for u in fewest.units]}; top-1 '
      f'{labels[fewest.cls]} -> {labels[fewest.new_top1] if fewest.k else None}')
if fewest.k:
    show_maps(focus, {f'unit {int(u)}': pooled_maps.maps[u] for u in fewest.units[:6]})
"""),
    "3a": Code(defines=(f"{CELLS}.hw_by_c",), calls="""\
maps, hw_c = hw_by_c(model, focus, IMAGE_SIZE)
print(tuple(maps.shape), '->', tuple(hw_c.shape))
"""),
    "3b": Code(calls="""\
per_position = fc_per_position(maps, model.fc)
print(tuple(per_position.shape))
"""),
    "3c": Code(defines=(f"{CELLS}.show_cams",), calls="""\
probs = per_position.mean(0).softmax(0).cpu().numpy()   # the FC is linear: the mean of (b) is the logits
top5 = [int(c) for c in probs.argsort()[::-1][:5]]
show_cams(focus, maps, model.fc.weight.detach().cpu().numpy(), top5, labels, probs, IMAGE_SIZE)
"""),
    "3d": Code(defines=(f"{CELLS}.top1_cam", f"{CELLS}.print_table"), calls="""\
for name, image in images.items():
    top = top1_cam(model, image, labels, IMAGE_SIZE)
    show_maps(image, {f"{name}: {top['label']} ({top['prob']:.1%})": top['map']}, IMAGE_SIZE)
print_table(RECORDED['faithfulness'], "Deletion and insertion areas of each map on its scene's top-1 class "
            "(recorded by the report run; the report's 3d explains the test)")
"""),
    "4a": Code(first=(f"{FASHION}.model.SmallCNN",), setup="""\
data = load(Path(FASHION_MNIST_DIR))
print(f'{len(data.train_y)} training and {len(data.test_y)} test images from {FASHION_MNIST_DIR}')
""", setup_defines=(f"{FASHION}.data.load", f"{FASHION}.data.CLASSES")),
    "4b": Code(),
    "4c": Code(defines=(f"{FASHION}.train.TrialConfig", f"{FASHION}.train.fit", f"{FASHION}.data.split",
                        f"{CELLS}.plot_curves"), calls="""\
curves = {label: (c['epoch'], c['accuracy']) for label, c in RECORDED['curves'].items()}
if RETRAIN:  # the final configuration, trained here with the code above
    config = TrialConfig().updated(RECORDED['final']['config'])
    validated = RECORDED['final']['validated']   # trained on the training split, as the report's 4c run
    result = fit(config, split(data, RECORDED['val_images'], full_train=not validated),
                 RECORDED['final']['seed'], torch.device(DEVICE), keep_model=True)
    retrained = result['net'].eval()
    rows = result['history']
    label = ('validation accuracy (all held-out images)' if validated
             else 'training accuracy (all 60 000 images)')
    curves[f'retrained here: {label}'] = (
        [r['epoch'] for r in rows], [r['val_acc' if validated else 'train_acc'] for r in rows])
plot_curves(curves, 'Problem 4c: accuracy by epoch (recorded by the report run'
            + (', and retrained here)' if RETRAIN else ')'))
"""),
    "4d": Code(defines=(f"{CELLS}.plot_grid", f"{CELLS}.print_table"), calls="""\
print_table(RECORDED['grid'], 'Every variant against the baseline (recorded by the report run)')
plot_grid(RECORDED['grid'], RECORDED['baseline_val_acc'],
          'Problem 4d: every grid variant, validation accuracy (recorded by the report run)')
"""),
    "final": Code(defines=(f"{FASHION}.model.load_model",), calls="""\
net = retrained if RETRAIN else load_model(MODEL_FILE, DEVICE)
test = evaluate(net, data.test_x, data.test_y)
print(f'test accuracy: {test.accuracy:.2%} ({int(test.correct.sum())} of {len(data.test_y)}); '
      f"recorded by the report run: {RECORDED['final']['test_acc']:.2%}")
print('first test images:', [CLASSES[get_prediction(x, net)] for x in data.test_x[:5]])
"""),
}


def parameters(results: dict) -> dict:
    """The parameters cell: where the notebook finds its inputs (papermill's ``parameters`` tag)."""
    run, model = results["run"], results.get("model") or {}
    demo = bool(model.get("demo"))
    categories = model.get("categories", "")
    return {
        "WEIGHTS": None if demo or not model else str(Path(model["weights"]).resolve()),
        "CATEGORIES": str(Path(categories).resolve()) if categories and not categories.startswith("none")
        else None,
        "ARCH": model.get("arch", "resnet50"), "DEMO_SEED": run["seed"],
        "IMAGES": [f"{IMAGES_DIR}/{s['id']}.png" for s in results.get("scenes", [])],
        "FOCUS_IMAGE": next((s["id"] for s in results.get("scenes", [])
                             if s["image"] == run.get("focus_scene")), None),
        "IMAGE_SIZE": run["config"]["image_size"],
        **{name: value for section in sections.running(run["sections"])
           for name, value in hook(section, "notebook_parameters", results).items()},
    }


def hook(section: sections.Section, name: str, results: dict) -> dict:
    """What a section's glue module gives the notebook (``notebook_parameters``, ``notebook_record``):
    {} where it has no such function."""
    function = getattr(section.load(), name, None)
    return function(results) if function else {}


PARAMETER_NOTES = {
    "WEIGHTS": "Places365 checkpoint (None: the untrained demo model the report used, seeded by DEMO_SEED)",
    "IMAGES": "scene images (the report's, saved losslessly beside this notebook)",
    "RETRAIN": "True: train the final configuration here instead of loading MODEL_FILE (minutes on a CPU)",
}


def recorded(results: dict) -> dict:
    """The run's numbers that the notebook shows but does not recompute (labelled as recorded): each
    running section's ``notebook_record(results)``, where its glue module has one."""
    data: dict = {}
    for section in sections.running(results["run"]["sections"]):
        data.update(hook(section, "notebook_record", results))
    return data


def markdown_answer(question: sections.Question, answer) -> str:
    heading = "Final model" if question.key == "final" else f"{question.key}"
    lines = [f"## {heading} ({question.points})", "", f"> {question.problem_set or question.asks}", ""]
    if answer is not None:
        lines += ["**Answer** (the report's, from this run's numbers): " + answer.text]
        lines += ["", *answer.reading] if answer.reading else []
    return "\n".join(lines)


def build(results: dict) -> tuple[nbformat.NotebookNode, dict]:
    """The unexecuted notebook and its parameters."""
    v4 = nbformat.v4
    ran = set(results["run"]["sections"])
    answers = answer_text.build(results, results["run"].get("focus_scene"))
    params = parameters(results)
    program = Program()
    cells: list[nbformat.NotebookNode] = []
    places_loaded = False
    for section in sections.running(ran):
        tag = f"problem-{section.problem}"
        cells.append(v4.new_markdown_cell(f"# Problem {section.problem}: {section.problem_title}"))
        if section.places and not places_loaded:
            setup = PLACES_SETUP
            cells.append(code_cell(program.cell(*setup.setup_defines), setup.setup.strip(), tag))
            places_loaded = True
        for question in section.questions:
            code = CODE.get(question.key, Code())
            if code.setup:
                cells.append(code_cell(program.cell(*code.setup_defines), code.setup.strip(), tag))
            cells.append(v4.new_markdown_cell(markdown_answer(question, answers.get(question.key))))
            if code.definitions(question) or code.calls:
                cells.append(code_cell(program.cell(*code.definitions(question)), code.calls.strip(), tag,
                                       question.key))
    head = [v4.new_markdown_cell(title_cell(results)),
            code_cell("", parameters_source(params), "parameters"),
            code_cell("", "from __future__ import annotations\n\nimport json\nfrom pathlib import Path\n\n"
                          + program.import_cell()
                          + "\n\n%matplotlib inline\nDEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'",
                      "setup"),
            v4.new_markdown_cell("The numbers this notebook shows but does not recompute, as recorded by the "
                                 f"report run `{results['run']['run_id']}` (results.json)."),
            code_cell("", "RECORDED = json.loads(r'''" + readable_json(recorded(results)) + "''')",
                      "recorded")]
    notebook = v4.new_notebook(cells=head + cells)
    notebook.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3",
                                             "language": "python"},
                              "language_info": {"name": "python"}})
    return notebook, params


def code_cell(definitions: str, calls: str, *tags: str) -> nbformat.NotebookNode:
    source = "\n\n\n".join(part for part in (definitions, calls) if part)
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})


def parameters_source(params: dict) -> str:
    lines = ["# Parameters (papermill: -p NAME VALUE). Paths are relative to this notebook's folder."]
    for name, value in params.items():
        note = PARAMETER_NOTES.get(name)
        lines += [f"# {note}"] if note else []
        shown = "".join(f"\n    {v!r}," for v in value) + "\n" if isinstance(value, list) and value else ""
        lines.append(f"{name} = [{shown}]" if isinstance(value, list) else f"{name} = {value!r}")
    return "\n".join(lines)


def readable_json(data: dict) -> str:
    """JSON with one line per entry of each top-level value: short enough to read in a cell."""
    def block(value, indent: str) -> str:
        if isinstance(value, dict) and value:
            rows = [f"{indent} {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value:
            rows = [f"{indent} {json.dumps(v)}" for v in value]
        else:
            return json.dumps(value)
        brackets = "{}" if isinstance(value, dict) else "[]"
        return brackets[0] + "\n" + ",\n".join(rows) + "\n" + indent + brackets[1]

    return "{\n" + ",\n".join(f" {json.dumps(k)}: {block(v, ' ')}" for k, v in data.items()) + "\n}"


def title_cell(results: dict) -> str:
    run, model = results["run"], results.get("model") or {}
    numbers = [s.problem for s in sections.running(run["sections"])]
    problems = f"Problems {numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else f"Problem {numbers[0]}"
    lines = [f"# Miniplaces: {problems}", "",
             f"Written by miniplaces-report (run `{run['run_id']}`, {run['date']}, preset `{run['preset']}`, "
             f"seed {run['seed']}). Each code cell holds the code that computed the report's numbers, copied "
             "from the project; the notebook imports nothing from it. The answers are the report's; the "
             "Places365 cells recompute their figures here, Problem 4 scores the saved model here, and the "
             "training history and grid of 4c and 4d are the run's numbers, embedded as `RECORDED`.", "",
             "To re-run: set the paths in the parameters cell, then *Restart & Run All*, or "
             "`papermill report.ipynb out.ipynb -p WEIGHTS resnet50_places365.pth.tar`."]
    if model:
        label = (model.get("provenance") or {}).get("label", model.get("weights", ""))
        lines += ["", f"Places365 weights: {label}."]
    warning = untrained_warning(model)
    if warning:
        lines += ["", f"**Untrained weights.** {capital(warning)}: the Places figures below show the method, "
                      "not what a trained network learned."]
    return "\n".join(lines)
