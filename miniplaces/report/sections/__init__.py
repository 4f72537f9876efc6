"""The report's sections, in report order: ``REGISTRY`` is the one description of each.

A ``Section`` says everything the rest of the program needs to know about a problem: its name
(``--only``), number and titles, whether it needs the Places365 network, its knobs per preset and the
options that override them, its sub-questions (anchor, titles, points, the problem set's words, the
functions whose source earns the points), how ``--compare`` reads its numbers, its appendix and
where its answer sentences are written. Presets, the glance table, the contents, the listings, the
comparison's scopes, the gates and the notebook's outline are all derived from these entries.

The section's code lives in three files of its own: the glue module (``miniplaces.report.sections.
<name>``: ``run(ctx) -> SectionResult`` and optionally ``check(ctx)``, which shapes an analysis's
output into JSON-able data and draws its figures), the sentences (``miniplaces.report.answers.<name>``:
``answer_<key>(results, scene) -> Answer`` per sub-question) and the template ``_<name>.html.j2``.
docs/adding-a-section.md walks through adding one.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Question:
    """One sub-question of the problem set, as the report, the glance table and the notebook show it."""

    key: str                        # "2b": the answer's key; its heading's anchor is "<section anchor>-2b"
    toc: str                        # the contents' label
    title: str                      # the heading
    topic: str                      # the glance table's words
    points: str                     # as the problem set gives them
    asks: str                       # the question in short, under the heading
    problem_set: str = ""           # the problem set's own words (the notebook quotes them)
    listed: tuple[str, ...] = ()    # dotted names of the functions whose source earns the points
    numbers: tuple[str, ...] = ()   # results.json paths (in the section; "scenes.x" per scene) it answers


@dataclass(frozen=True)
class Compare:
    """How ``--compare`` reads a section's numbers."""

    scope: str                                # the name options and inputs use to say they move them
    noise: str                                # "places" (deterministic up to float rounding) or "retrained"
    moved_by: tuple[str, ...] = ()            # run options (RunConfig fields) that can move them
    default_question: str = ""                # the sub-question of a path no Question.numbers names
    inputs: tuple[tuple[str, str, tuple[str, ...]], ...] = ()   # (label, kind, path in the section's
    # results) of each input file or setting whose change explains a moved number
    ignored_input_keys: frozenset[str] = frozenset()   # keys of those inputs that describe the machine


@dataclass(frozen=True)
class Appendix:
    anchor: str
    title: str
    template: str


@dataclass(frozen=True)
class Section:
    name: str                                  # --only/--skip, results.json's key
    problem: int
    title: str                                 # the report's heading
    problem_title: str                         # the problem set's heading (the notebook's)
    questions: tuple[Question, ...]
    presets: Mapping[str, Mapping[str, Any]]   # preset -> the section's knobs
    compare: Compare
    places: bool = True                        # needs the Places365 network (loaded, and --strict checked,
    # only when a section that does runs)
    per_scene: bool = False                    # answers per scene, in results["scenes"][i]
    options: Mapping[str, str] = field(default_factory=dict)   # RunConfig field -> the knob it overrides
    anchor: str = ""                           # its questions' anchor prefix (default: the name)
    appendix: Appendix | None = None
    input_label: str = ""                      # names its own input data in the run summary; its results
    # then hold data.source and data.sha256
    saved_model: tuple[str, ...] = ()          # path in its results of the saved model's record (test_acc,
    # model_file): the model a submission hands in
    module: str = ""                           # the glue module (default: miniplaces.report.sections.<name>)
    answers: str = ""                          # the sentences' module (default:
    # miniplaces.report.answers.<name>)
    template: str | Path = ""                  # default: _<name>.html.j2 in templates/

    def load(self) -> ModuleType:
        """The glue module, imported only when the section runs (Problem 4 alone never imports
        torchvision)."""
        return importlib.import_module(self.module or f"{__name__}.{self.name}")

    def answer_module(self) -> ModuleType:
        return importlib.import_module(self.answers or f"miniplaces.report.answers.{self.name}")

    def params(self, config) -> dict[str, Any]:
        """The preset's knobs, with the command-line options that override them."""
        params = dict(self.presets[config.preset])
        for option, knob in self.options.items():
            value = getattr(config, option)
            if value not in (None, (), []):
                params[knob] = list(value) if isinstance(value, tuple) else value
        return params

    def anchor_of(self, question: Question) -> str:
        return f"{self.anchor or self.name}-{question.key}"

    @property
    def template_name(self) -> str:
        return Path(self.template).name if self.template else f"_{self.name}.html.j2"


PLACES_OPTIONS = ("arch", "weights", "preset")   # options that move every Places number
SCENE_OPTIONS = PLACES_OPTIONS + ("images", "replace_images", "image_size")
PLACES_NOISE = "places"

FILTERS = Section(
    "filters", 1, "Filter visualisation", "Filter Visualization",
    presets={"quick": {"layers": ["conv1", "layer1.0.conv2"], "max_filters": 64},
             "standard": {"layers": ["conv1", "layer1.0.conv2", "layer4.0.conv2"], "max_filters": 64},
             "full": {"layers": ["conv1", "layer1.0.conv2", "layer2.0.conv2", "layer3.0.conv2",
                                 "layer4.0.conv2"], "max_filters": 64}},
    options={"filter_layers": "layers"},
    compare=Compare("filters", PLACES_NOISE, PLACES_OPTIONS + ("filter_layers",), default_question="1b"),
    questions=(
        Question("1a", points="1 pt",
                 toc="1a. normalize_tensor",
                 title="1a. normalize_tensor",
                 topic="normalize_tensor",
                 asks="Implement normalize_tensor to normalise a kernel for display.",
                 problem_set=("Implement normalize_tensor to normalize the input kernel for better "
                              "visualization in the visualize_filters function."),
                 listed=("analyses.filters.normalize_tensor",),
                 numbers=("normalization",)),
        Question("1b", points="1 pt",
                 toc="1b. conv1 and a deeper layer",
                 title="1b. Filters of conv1 and a deeper layer",
                 topic="filters of conv1 and a deeper layer",
                 asks="Visualise the filters of another convolutional layer.",
                 problem_set="Visualize filters for another convolutional layer in ResNet."),
    ))

UNITS = Section(
    "units", 2, "Internal units of the last conv layer", "Internal Activation Visualization",
    presets={"quick": {"sweep_limit": 100, "top_units": 5}, "standard": {"sweep_limit": 100, "top_units": 5},
             "full": {"sweep_limit": 300, "top_units": 5}},
    options={"sweep_limit": "sweep_limit"}, per_scene=True,
    compare=Compare("scenes", PLACES_NOISE, SCENE_OPTIONS + ("sweep_limit", "device"), default_question="2b"),
    questions=(
        Question("2a", points="1 pt",
                 toc="2a. The chopped ResNet",
                 title="2a. The chopped ResNet",
                 topic="the chopped ResNet",
                 asks="Remove the last two layers of the ResNet to expose the last convolutional layer.",
                 problem_set=("Create a version of the ResNet model without the last two layers to expose "
                              "the last convolutional layers in generate_featuremap_unit function."),
                 listed=("analyses.feature_maps.chop",),
                 numbers=("model",)),
        Question("2b", points="1 pt",
                 toc="2b. Concept units (sky, building, ...)",
                 title="2b. Units that detect sky, building and other concepts",
                 topic="units that detect sky and building",
                 asks="Unit 300 activates on the mountain; find units that detect sky and building.",
                 problem_set=("As you can see, the unit 300 activates the mountain part of the image. Find "
                              "other units that detect 1) sky and 2) building in the image."),
                 numbers=("dissection",
                          "scenes.concept_units",
                          "scenes.concepts",
                          "scenes.most_active",
                          "scenes.unit300")),
        Question("2c", points="1.5 pts",
                 toc="2c. Top-5 unit ablation",
                 title="2c. Zeroing the top-5 units of the top-1 class",
                 topic="zeroing the top-5 units",
                 asks=("Zero the five units with the largest FC weights for the top-1 class; compare the "
                       "top-5 predictions before and after; show the units' feature maps."),
                 problem_set=("Deactivate the top-5 units with the largest FC weights for the top-1 "
                              "category, compare the original and new top-5 predictions, and show the "
                              "feature maps of those units."),
                 numbers=("scenes.ablation",)),
        Question("2d", points="1.5 pts",
                 toc="2d. Fewest units that change the top-1 class",
                 title="2d. Fewest units that change the top-1 class",
                 topic="fewest units that change the top-1 class",
                 asks=("Deactivate fewer units: what is the lowest number of units whose removal changes the"
                       " top prediction?"),
                 problem_set=("Try to deactivate fewer units. Report the lowest number of dropped units "
                              "required to change the top prediction class."),
                 numbers=("scenes.sweep", "sweep_limit")),
    ))

CAM = Section(
    "cam", 3, "Class activation maps (CAM)", "Class Activation Map (CAM)",
    presets={"quick": {"top_k": 5, "faithfulness": {"steps": 4, "random_seeds": 3, "max_scenes": 1}},
             "standard": {"top_k": 5, "faithfulness": {"steps": 5, "random_seeds": 3}},
             "full": {"top_k": 5, "faithfulness": {"steps": 20, "random_seeds": 5, "score_cam": True}}},
    per_scene=True,
    compare=Compare("scenes", PLACES_NOISE, SCENE_OPTIONS + ("device",), default_question="3c"),
    questions=(
        Question("3a", points="1 pt",
                 toc="3a. (1 x c x h x w) to (hw x c)",
                 title="3a. From (1 x c x h x w) to (hw x c)",
                 topic="(1 x c x h x w) to (hw x c)",
                 asks="Convert the chopped ResNet's output to a tensor of size (hw x c).",
                 problem_set=("Convert the chopped ResNet's (1 x 2048 x 8 x 8) output to a tensor of size "
                              "(hw x c)."),
                 listed=("analyses.cam.reshape_hw_c",),
                 numbers=("shapes.chopped", "shapes.reshaped")),
        Question("3b", points="1 pt",
                 toc="3b. FC layer per position: (hw x 365)",
                 title="3b. The FC layer at every position: (hw x 365)",
                 topic="the FC layer at every position",
                 asks="Feed the (hw x c) tensor to the fully connected layer.",
                 problem_set=("Feed the new tensor from (a) to the fully connected layer of ResNet. You will"
                              " get an output of size (hw x 365)."),
                 listed=("analyses.cam.fc_per_position",),
                 numbers=("shapes",)),
        Question("3c", points="1 pt",
                 toc="3c. CAMs of the top-5 classes, explained",
                 title="3c. CAMs of the top-5 classes, explained",
                 topic="CAMs of the top-5 classes",
                 asks=("Show the maps of the top-5 categories on the image and explain the relation between "
                       "activations and category."),
                 problem_set=("Show the feature maps (combined with the input image) of the top 5 predicted "
                              "categories and explain the relationship between the feature activation and "
                              "the category."),
                 numbers=("scenes.top5",)),
        Question("3d", points="0.5 pt bonus",
                 toc="3d. Other scenes: is CAM effective?",
                 title="3d. Other scenes: is the visualisation effective?",
                 topic="is CAM effective on other scenes?",
                 asks="Run the visualisation on other scene images; is it still effective, and why?",
                 problem_set=("Try running this visualization method on another image of a scene. Is the "
                              "visualization still effective for your image? Explain why or why not."),
                 numbers=("verdict", "verdict_rule", "effective_scenes")),
    ))

FASHION_MNIST = Section(
    "fashion_mnist", 4, "FashionMNIST training", "Network Training", places=False, anchor="fm",
    presets={"quick": {"grid": "quick"}, "standard": {"grid": "standard"}, "full": {"grid": "full"}},
    compare=Compare("fashion", "retrained", ("preset", "device", "seed", "grid"), default_question="4d",
                    inputs=(("FashionMNIST data (SHA-256)", "data", ("data", "sha256")),
                            ("FashionMNIST grid", "config", ("grid",))),
                    ignored_input_keys=frozenset({"executor", "threads", "workers", "final_threads", "device",
                                                  "source"})),
    appendix=Appendix("appendix-training", "Appendix B: every training run", "_appendix_training.html.j2"),
    input_label="FashionMNIST", saved_model=("final",),
    questions=(
        Question("4a", points="1 pt",
                 toc="4a. train",
                 title="4a. train",
                 topic="train",
                 asks="Complete the function train that trains a network for one epoch.",
                 problem_set="Complete the function train that trains a network for 1 epoch.",
                 listed=("analyses.fashion_mnist.train.train",)),
        Question("4b", points="1 pt",
                 toc="4b. get_prediction and evaluate",
                 title="4b. get_prediction and evaluate",
                 topic="get_prediction and evaluate",
                 asks="Return the predicted class of an image, and compute the accuracy in evaluate.",
                 problem_set=("Implement the get_prediction function, which returns the index of the "
                              "predicted class given an image and a network, and the accuracy computation in"
                              " evaluate."),
                 listed=("analyses.fashion_mnist.train.get_prediction",
                         "analyses.fashion_mnist.train.evaluate")),
        Question("4c", points="1 pt",
                 toc="4c. optimizer and 10-epoch baseline",
                 title="4c. Optimizer and 10 epochs of training",
                 topic="optimizer and 10 epochs",
                 asks=("Instantiate an optimizer, train and validate for 10 epochs, and report the final "
                       "validation accuracy."),
                 problem_set=("Instantiate an optimizer to update the weights of the network during "
                              "training. Run training and validation for 10 epochs and report your final "
                              "validation accuracy."),
                 listed=("analyses.fashion_mnist.train.make_optimizer",),
                 numbers=("baseline",)),
        Question("4d", points="2 pts",
                 toc="4d. hyperparameter grid",
                 title="4d. Design choices and hyperparameters",
                 topic="design choices and hyperparameters",
                 asks=("Experiment with data augmentation, weight initialisation, depth/width, optimizer, "
                       "learning rate and schedule, and regularisation."),
                 problem_set=("Experiment with data augmentation, weight initialization, the number of "
                              "layers or features, the type of optimizer, the learning rate and/or schedule,"
                              " and regularization.")),
        Question("final", points="credit at > 90 %",
                 toc="Final model",
                 title="The final model",
                 topic="the saved model",
                 asks="Save a model that attains more than 90 % test accuracy.",
                 problem_set=("Save your model. You will receive credit if your model attains > 90% "
                              "accuracy."),
                 numbers=("final",)),
    ))

REGISTRY: list[Section] = [FILTERS, UNITS, CAM, FASHION_MNIST]


def names() -> tuple[str, ...]:
    return tuple(s.name for s in REGISTRY)


def get(name: str) -> Section:
    return next(s for s in REGISTRY if s.name == name)


def running(names_: tuple[str, ...] | list[str]) -> list[Section]:
    """The registered sections among ``names_``, in report order."""
    return [s for s in REGISTRY if s.name in names_]


def needing_places(names_) -> list[str]:
    """The sections among ``names_`` that need the Places365 network."""
    return [s.name for s in running(names_) if s.places]


def questions() -> dict[str, tuple[Section, Question]]:
    """Every sub-question by key, with its section."""
    return {q.key: (s, q) for s in REGISTRY for q in s.questions}


def template_dirs() -> list[Path]:
    """Folders of sections whose template lives outside templates/ (a section added from elsewhere)."""
    return [Path(s.template).parent for s in REGISTRY if s.template and Path(s.template).is_absolute()]


def model_section() -> Section | None:
    """The section that saves the model a submission hands in."""
    return next((s for s in REGISTRY if s.saved_model), None)


def saved_model_record(results: dict) -> dict:
    """The saved model's record in a results.json ({} where there is none); ``saved_model_path`` names it."""
    section = model_section()
    value: Any = results.get(section.name) if section else None
    for key in section.saved_model if section else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def saved_model_path() -> str:
    section = model_section()
    return ".".join((section.name, *section.saved_model)) if section else "(no section saves a model)"


def saved_model_accuracy(results: dict) -> float | None:
    """The saved model's test accuracy in a results.json, or None where it has none."""
    return saved_model_record(results).get("test_acc")
