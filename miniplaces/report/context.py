"""The RunContext handed to every section, and the SectionResult each returns.

Inputs that several sections share (the Places model, the scene images, the layer4 feature maps)
are built lazily here, once per run, so a run that skips a section never pays for its inputs.
"""
from __future__ import annotations

import functools
import glob
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniplaces import resources
from miniplaces.cache import Cache
from miniplaces.config import RunConfig
from miniplaces.report import sections

log = logging.getLogger("miniplaces")


@dataclass
class SectionResult:
    """What a section hands to the renderer.

    ``data`` goes verbatim to results.json under the section's name and is what the template shows;
    ``figures`` maps a figure id to its path relative to the out dir; ``notes`` are warnings or
    skips that the report must show (a figure that could not be made says so and why).
    """

    data: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0


@functools.lru_cache(maxsize=1)
def drawing_code_version() -> str:
    """Hash of the analysis and section sources: editing any drawing or computing code redraws figures."""
    from miniplaces.cache import code_version

    root = resources.ROOT
    return code_version(*sorted([*root.glob("analyses/*.py"), *root.glob("miniplaces/*.py"),
                                 *root.glob("miniplaces/report/*.py"), *root.glob("miniplaces/inputs/*.py"),
                                 *root.glob("miniplaces/report/sections/*.py")]))


class RunContext:
    """Shared, lazily built inputs of one run."""

    def __init__(self, config: RunConfig, cache: Cache):
        self.config = config
        self.cache = cache
        self.out = Path(config.out)
        self.figures_dir = self.out / "figures"
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.warnings: list[str] = []   # shown in the report's run summary
        self._memo: dict[str, Any] = {}

    def shared(self, name: str, build: Callable[[], Any]) -> Any:
        """Build a shared input once per run (the model, the scenes, feature maps)."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def figure(self, name: str, draw: Callable[[], Any], demo: bool, inputs: dict) -> str:
        """Write figure ``name`` and return its path relative to the out dir.

        Drawing costs seconds per figure, so the image (JPEG or PNG, whichever is smaller for it) is
        cached under ``inputs`` (everything the figure's data came from) plus the drawing code: a rerun
        with nothing changed copies it.
        """
        from miniplaces import atomic
        from miniplaces.report import figures

        (data, ext), _ = self.cache.get_or_compute("figures", {**inputs, "figure": name, "demo": demo,
                                                               "code": drawing_code_version()},
                                                   lambda: figures.compact_bytes(draw(), demo))
        path = self.figures_dir / f"{name}.{ext}"
        for stale in self.figures_dir.glob(f"{glob.escape(name)}.*"):  # an earlier run's other format
            if stale != path:
                stale.unlink()
        atomic.write_bytes(path, data)
        return self.relative(path)

    def places_inputs(self, with_scenes: bool) -> dict:
        """Everything a Places figure can depend on: weights, labels, options and, for the scene
        sections, every scene with its concepts (Network Dissection thresholds span all images)."""
        from miniplaces.cache import digest

        def build() -> dict:
            places, c = self.places(), self.config
            inputs = {"sha256": places.sha256, "arch": places.arch, "labels": digest(places.labels),
                      "image_size": c.image_size,
                      "params": {s.name: s.params(c) for s in sections.REGISTRY if s.places}}
            if with_scenes:
                inputs["scenes"] = [(s.name, s.sha256, digest(s.concepts)) for s in self.scenes().scenes]
            return inputs

        return self.shared(f"places_inputs/{with_scenes}", build)

    def params(self, section: str) -> dict:
        """The section's knobs under this run's preset and options."""
        return sections.get(section).params(self.config)

    def per_scene_sections(self) -> list[str]:
        """The running sections that answer per scene (they need the scenes decoded)."""
        return [s.name for s in sections.running(self.config.sections) if s.per_scene]

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.out).as_posix()

    @property
    def show_progress(self) -> bool:
        return self.config.verbosity >= 0

    def places(self):
        """The Places365 model (or the marked demo model), loaded once."""
        from miniplaces.inputs.places_model import provision

        c = self.config
        return self.shared("places", lambda: provision(
            c.weights, c.categories, c.arch, Path(c.cache_dir), c.device, c.seed, c.strict, c.offline,
            progress=self.show_progress))

    def model_json(self) -> dict:
        """results.json's ``model``: the loaded network, its provenance and its weights check.

        The check's behavioural part reads the scenes' predictions, so it runs only where Problems 2
        or 3 need those feature maps anyway.
        """
        from analyses.feature_maps import softmax
        from miniplaces.inputs.checkpoint import weights_check

        places = self.places()
        probs = None
        if self.per_scene_sections():
            probs = [softmax(self.feature_maps(scene)[0].logits) for scene in self.scenes().scenes]
        return {**places.to_json(), "weights_check": weights_check(places.model, probs, places.labels)}

    def scenes(self):
        """The scene images of Problems 2 and 3 (inputs.scenes.SceneSet), decoded once; warnings once.
        Scenes whose preprocessed tensors are equal are analysed once (the others listed as duplicates)."""
        from analyses.feature_maps import preprocess
        from miniplaces.inputs.scenes import drop_duplicates, load_scenes

        c = self.config
        return self.shared("scenes", lambda: drop_duplicates(
            load_scenes(c.images, c.replace_images, self.warn),
            lambda scene: preprocess(scene.image, c.image_size).numpy().tobytes(), self.warn))

    def feature_maps(self, scene):
        """(FeatureMaps, was_cached) of layer4 for one scene: one forward pass per image per run,
        cached on disk.

        The key holds everything the maps depend on: the weights' hash, the image bytes' hash, the
        input size, the architecture and the source of the decoding and feature-map code.
        """
        from analyses import feature_maps as fm
        from miniplaces.cache import code_version
        from miniplaces.inputs import scenes as scenes_module

        places = self.places()
        parts = {"sha256": places.sha256, "image": scene.sha256, "size": self.config.image_size,
                 "arch": places.arch, "code": code_version(fm, scenes_module)}
        return self.shared(f"feature_maps/{scene.id}", lambda: self.cache.get_or_compute(
            "feature_maps", parts,
            lambda: fm.compute_feature_maps(places.model, scene.image, self.config.image_size,
                                            places.device)))
