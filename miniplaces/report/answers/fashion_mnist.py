"""Problem 4's answer sentences, from results.json's numbers."""
from __future__ import annotations

from typing import Any

from analyses.fashion_mnist import grid as fgrid
from analyses.fashion_mnist import summary as fsum
from miniplaces.report.answers import Answer
from miniplaces.report.wording import p_value, pct, plural


def _trained(base: dict) -> str:
    """'1,920 of the 2,000 images (the last partial batch is dropped)': what an epoch really trains on."""
    trained, total = base.get("trained_per_epoch", base["train_images"]), base["train_images"]
    return (f"{total:,} images" if trained == total else
            f"{trained:,} of the {total:,} images (the last partial batch is dropped)")


def answer_4a(results: dict, focus: dict | None) -> Answer:
    base = results["fashion_mnist"]["baseline"]
    cfg = base["config"]
    return Answer("4a", [
        f"train shuffles the training images, augments each batch ({cfg['augment']}), computes the "
        f"cross-entropy loss (label smoothing {cfg['label_smoothing']}), back-propagates, and steps the "
        "optimizer and the per-batch learning-rate schedule; it stops a trial whose loss is not finite.",
        f"On the baseline one epoch trains {_trained(base)} and takes "
        f"{base['median_epoch_s']:.1f} s ({base['images_per_s']:,.0f} images/s).",
    ], glance=f"One epoch: shuffle, augment, loss, backward, step; {base['images_per_s']:,.0f} images/s.")


def _sample(base: dict) -> str:
    """The images the baseline's epochs before the last were scored on (train.fit): a sample or all."""
    return f"sample of {base['curve_images']:,} images" if base["curve_images"] else "split"


def answer_4b(results: dict, focus: dict | None) -> Answer:
    base = results["fashion_mnist"]["baseline"]
    return Answer("4b", [
        "get_prediction returns the arg-max of the network's logits (an int for one image, a tensor of "
        "indices for a batch); evaluate returns the fraction of predictions equal to the labels, "
        "in eval mode.",
        f"The baseline scores {pct(base['first_val_acc'], 2)} on the validation {_sample(base)} "
        f"after epoch 1 and {pct(base['val_acc'], 2)} on all {base['val_images']:,} "
        f"after epoch {base['epochs']}.",
    ], glance=f"Arg-max of the logits; accuracy = share of correct predictions ({pct(base['val_acc'], 2)} "
              "for the baseline).")


PROBLEM_SET_EPOCHS = 10


def _last_epoch(base: dict) -> str | None:
    """The last epoch's change, judged by the paired test on the images both epochs were scored on."""
    test = base.get("last_epoch_test")
    if not test:
        return None
    beyond = test["p_value"] < test["alpha"]
    delta = test["delta_pp"]
    trend = ("was still rising" if beyond and delta > 0 else "fell" if beyond
             else "did not change beyond chance")
    return (f"Validation accuracy {trend} in the last epoch ({delta:+.2f} pp on the {_sample(base)}; the two "
            f"epochs disagree on {sum(test['discordant']):,} of the same {test['images']:,} images, "
            f"{test['name']} {p_value(test['p_value'])}), up from {pct(base['first_val_acc'], 2)} after "
            "epoch 1"
            + ("; more epochs would likely help." if beyond and delta > 0 else "."))


def _subset(fm: dict) -> str:
    """' (a subset of the 50,000-image training split; ...)': said where the baseline did not train on the
    whole split, which the problem set's 10 epochs mean, with what is then unmeasured: no run trains the
    baseline that many epochs on all of it (a finalist stage's baseline could)."""
    data, base = fm.get("data") or {}, fm["baseline"]
    split = data.get("train_images", 0) - data.get("val_images", 0)
    if split <= base["train_images"]:
        return ""
    finalists = (fm.get("finalists") or {}).get("trials") or []
    measured = any(t["name"] == "finalist: baseline" and t["epochs_run"] == base["epochs"] for t in finalists)
    return (f" (a subset of the {split:,}-image training split"
            + (")" if measured else f"; no run here trains it {base['epochs']} epochs on all of it)"))


def _network(cfg: dict) -> str:
    """'the 32-64-128-channel network with depth 1-2-2 (adam at lr 0.01, onecycle, weight decay 0.0,
    augment flip)': a config's network and recipe in a few words."""
    depth = cfg["depth"] if isinstance(cfg["depth"], int) else "-".join(map(str, cfg["depth"]))
    channels = "-".join(map(str, cfg["channels"]))
    return (f"the {channels}-channel network with depth {depth} ({cfg['optimizer']} at lr {cfg['lr']}, "
            f"{cfg['schedule']}, weight decay {cfg['weight_decay']}, augment {cfg['augment']})")


def answer_4c_validated(results: dict) -> Answer:
    """4c from the run that answers it as asked: the final model's own training on the whole training
    split, validated on all held-out images after every epoch (grid file ``final_validated``)."""
    fm = results["fashion_mnist"]
    final, base = fm["final"], fm["baseline"]
    cfg, epochs = final["config"], len(final["history"])
    why = ("the baseline, which the grid chose" if final["chosen"].removeprefix("finalist: ") == "baseline"
           else "the grid's choice rather than the baseline")
    sentences = []
    if epochs != PROBLEM_SET_EPOCHS:
        preset = results.get("run", {}).get("preset", "chosen")
        sentences.append(f"The {preset} preset trains {plural(epochs, 'epoch')}, not the problem set's "
                         f"{PROBLEM_SET_EPOCHS}, to keep the run short.")
    sentences.append(
        f"4c's run is the final model's own training: {_network(cfg)}, {why}, trained "
        f"{plural(epochs, 'epoch')} on the {final['train_images']:,}-image training split, reaches "
        f"{pct(final['val_acc'], 2)} on all {final['val_images']:,} held-out images.")
    asks = "." if epochs == PROBLEM_SET_EPOCHS else f"; the problem set asks for {PROBLEM_SET_EPOCHS}."
    glance = (f"{pct(final['val_acc'], 2)} validation accuracy after {plural(epochs, 'epoch')} on the whole "
              f"training split (the final model's run){asks}")
    reading = [f"The baseline, {base['config']['optimizer']} on the grid's {base['train_images']:,}-image "
               f"subset, reaches {pct(base['val_acc'], 2)} on the same held-out images after "
               f"{plural(base['epochs'], 'epoch')}."]
    last = _last_epoch({"last_epoch_test": final.get("last_epoch_test"), "curve_images": None,
                        "first_val_acc": final["history"][0]["val_acc"]})
    return Answer("4c", sentences, glance, reading + ([last] if last else []))


def answer_4c(results: dict, focus: dict | None) -> Answer:
    if (results["fashion_mnist"].get("final") or {}).get("validated"):
        return answer_4c_validated(results)
    base = results["fashion_mnist"]["baseline"]
    cfg = base["config"]
    epochs = base["epochs"]
    sentences = []
    if epochs != PROBLEM_SET_EPOCHS:   # a deviation from the question is said first, with its reason
        preset = results.get("run", {}).get("preset", "chosen")
        sentences.append(f"The {preset} preset trains {plural(epochs, 'epoch')}, not the problem set's "
                         f"{PROBLEM_SET_EPOCHS}, to keep the run short.")
    sentences += [
        f"The baseline's final validation accuracy after {plural(epochs, 'epoch')} on "
        f"{base['train_images']:,} "
        f"training images{_subset(results['fashion_mnist'])} is {pct(base['val_acc'], 2)}"
        f" on all {base['val_images']:,} validation images.",
        f"make_optimizer builds {cfg['optimizer']} with learning rate {cfg['lr']} on a {cfg['schedule']} "
        f"schedule and weight decay {cfg['weight_decay']} (not on BatchNorm weights and biases).",
    ]
    glance = (f"{pct(base['val_acc'], 2)} validation accuracy after {plural(epochs, 'epoch')} "
              f"({cfg['optimizer']})" + ("." if epochs == PROBLEM_SET_EPOCHS else
                                         f"; the problem set asks for {PROBLEM_SET_EPOCHS}."))
    last = _last_epoch(base)
    return Answer("4c", sentences, glance, [last] if last else [])


def _label(row: dict) -> str:
    """A variant as a sentence names it: with every setting it changes besides its name (``label``)."""
    return row.get("label") or row["variant"]


def _variant_rows(block: dict) -> list[dict]:
    return [r for r in block["rows"] if r["name"] != "baseline" and r.get("test")]


def _family_scope(fm: dict, judged: list[dict] | None = None) -> tuple[str, str]:
    """(the grid's correction, what its test leaves out) for a sentence that counts verdicts: the family
    every axis's verdicts were corrected over (results.json ``grid_family``), and seed noise: paired over
    seeds, or how many of the ``judged`` rows' differences exceed the baseline's retraining band
    (``seed_noise``, rows' ``retraining``), or not measured."""
    family = fm.get("grid_family") or fm["axes"][0]["test"]
    correction = family["correction"] if family["k"] > 1 else "one comparison, so no correction"
    noise = fm.get("seed_noise") or {}
    if family.get("seeds", 1) > 1:
        return correction, f"paired over {family['seeds']} seeds"
    if noise.get("band_pp") is None:
        return correction, "retraining (seed) noise not measured"
    band = f"±{noise['band_pp']:.2f} pp, rough"     # short: the answer has 75 words; seeds in the method
    if not judged:
        return correction, f"retraining noise {band}"
    beyond = sum(r.get("retraining") == "beyond" for r in judged)
    return correction, f"{beyond} of {len(judged)} also beyond retraining noise ({band})"


def answer_4d(results: dict, focus: dict | None) -> Answer:
    fm = results["fashion_mnist"]
    rows = [(axis, r) for axis in fm["axes"] for r in _variant_rows(axis)]
    better = [(a, r) for a, r in rows if r["test"]["verdict"] == "better"]
    worse = [(a, r) for a, r in rows if r["test"]["verdict"] == "worse"]
    test = fm["axes"][0]["test"]
    correction, unmeasured = _family_scope(fm, [r for _, r in better + worse])
    sentences = [
        f"Of {plural(len(rows), 'variant')} tried one axis at a time, {len(better)} beat the baseline "
        f"({pct(fm['baseline']['val_acc'], 2)}) and {len(worse)} did worse beyond validation-sample noise; "
        f"the rest are within it ({test['name']} on the same {test['images']:,} validation images, "
        f"{correction}; {unmeasured})."]
    if better:
        axis, top = max(better, key=lambda ar: ar[1]["delta_pp"])
        sentences.append(f"The largest measurable gain is {_label(top)} on the {axis['axis']} axis, "
                         f"{top['delta_pp']:+.2f} pp.")
    if worse:
        lost = [r for _, r in sorted(worse, key=lambda ar: ar[1]["delta_pp"])]
        sentences.append("Worse beyond that noise: " + "; ".join(f"{_label(r)} ({r['delta_pp']:+.2f} pp)"
                                                                 for r in lost) + ".")
    untested_gains = [(a, r) for a, r in rows if r["test"]["verdict"] == "no measurable difference"
                      and r["delta_pp"] is not None and r["delta_pp"] > 0]
    if not better and untested_gains and len(sentences) < 3:
        axis, top = max(untested_gains, key=lambda ar: ar[1]["delta_pp"])
        sentences.append(f"The largest raw gain, {_label(top)} ({top['delta_pp']:+.2f} pp), "
                         "is not beyond validation-sample noise.")
    glance = (f"{len(better)} of {plural(len(rows), 'variant')} beat the baseline beyond validation-sample "
              f"noise, {len(worse)} {'was' if len(worse) == 1 else 'were'} worse (paired test, "
              f"{correction}).")
    return Answer("4d", sentences, glance)


# beside the test score, not only in the protocol: what the test set did influence (docs/fashion_mnist.md)
TEST_CAVEAT = "slightly optimistic: an earlier test score shaped the grid's design"


def answer_final(results: dict, focus: dict | None) -> Answer:
    final = results["fashion_mnist"]["final"]
    test_images = results["fashion_mnist"]["data"]["test_images"]
    (low, high), acc = final["test_interval"], final["test_acc"]
    verdict = "above" if acc > 0.9 else "below"
    noise = ", but not by more than the test set's sampling noise" if low <= 0.9 <= high else ""
    sentences = [
        f"The saved model scores {pct(acc, 2)} on the {test_images:,} test images (exact 95 % interval "
        f"{pct(low, 2)} to {pct(high, 2)}; {TEST_CAVEAT}), {verdict} the 90 % the problem set asks "
        f"for{noise}.",
        final["decision"]["text"],
    ]
    chosen = final["decision"]["chosen"].removeprefix("finalist: ")
    glance = (f"{pct(acc, 2)} test accuracy, {verdict} the 90 % bar "
              f"({chosen}, " + ("the model of 4c's run)." if final.get("validated")
                                else "retrained on all images)."))
    return Answer("final", sentences, glance)


# ------------------------------------------ sentences the glue stores in results.json beside the numbers

PROTOCOL = ("Model selection uses a fixed validation split of the 60 000 training images (the same images "
            "for every trial and seed); within a run, the official 10 000-image test set is scored once, on "
            "the finished final model, and chooses nothing. The grid's design did see it once: the test "
            "score of an earlier grid's final model (91.9 %, after its winning combination overfitted at "
            "full scale) led to a finalist stage (in grids that have one) and to a new baseline, so the "
            "reported test accuracy is not an untouched estimate.")


def cache_clause(trained: int, total: int) -> str:
    """Where the grid's trials came from, true at both ends: 'all trained in this run', 'all from the cache',
    '3 trained in this run, the rest from the cache'."""
    if trained == total:
        return "all trained in this run"
    return "all from the cache" if trained == 0 else f"{trained} trained in this run, the rest from the cache"


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def series(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _corrected(info: dict) -> str:
    """' even after correction (Holm over all 17 variants of the grid)': the family a test was corrected
    over, for a sentence ('' for one comparison)."""
    return f" even after correction ({info['correction']})" if info["k"] > 1 else ""


NOISE = "validation-sample noise"


def _family(info: dict) -> str:
    """', corrected by Holm over all 17 variants of the grid': the clause after a test's description."""
    return f", corrected by {info['correction']}" if info["k"] > 1 else ""


UNMEASURED = "retraining (seed) noise is not measured"


def noise_text(noise: dict[str, Any]) -> str:
    """The baseline's retraining spread (summary.seed_noise) as the report says it, rough as it is."""
    accs = series([pct(a, 2) for a in noise["val_acc"] if a is not None])
    if noise["band_pp"] is None:
        return f"the baseline's grid trial with {noise['n']} seed scored {accs}: no spread measured"
    flips = series([_count(f) for f in noise["flips"] if f is not None])
    seeds = series([str(s) for s in noise["seeds"]])
    return (f"retrained with {noise['n']} seeds ({seeds}), the baseline's grid trial scores {accs} on the "
            f"same {_count(noise['images'])} validation images (standard deviation "
            f"{100 * noise['std']:.2f} pp; each other seed disagrees with the first on {flips} of them), so "
            f"a difference between two single-seed trials has a standard deviation of about "
            f"{noise['diff_sd_pp']:.2f} pp and one within ±{noise['band_pp']:.2f} pp (twice that) is within "
            f"retraining noise; from {noise['n']} seeds this is a rough estimate")


def _retraining(group: list[dict], noise: dict | None) -> str:
    """What retraining noise says of these rows' differences: unmeasured, or which exceed the baseline's
    retraining band (rows' ``retraining``, summary.against_noise)."""
    if not noise or noise.get("band_pp") is None:
        return UNMEASURED
    band = f"±{noise['band_pp']:.2f} pp, from {noise['n']} seeds of the baseline, a rough estimate"
    beyond = sum(r.get("retraining") == "beyond" for r in group)
    if len(group) == 1:
        return f"{'beyond' if beyond else 'but within'} retraining noise ({band})"
    return f"{beyond} of the {len(group)} differences beyond retraining noise ({band})"


def _evidence(test: dict, info: dict, retraining: str = UNMEASURED) -> str:
    """How the top gain was established, for the sentence: disagreements, seeds, correction, and what the
    test measures (which images are in the validation split; with one seed, not retraining noise)."""
    disagree = sum(test["discordant"])
    if test["seeds"] > 1:
        deltas = [s["delta_pp"] for s in test["per_seed"]]
        seen = (f"averaged over {test['seeds']} seeds whose gains range from {min(deltas):+.2f} to "
                f"{max(deltas):+.2f} pp; the models disagree on {_count(round(disagree / test['seeds']))} of "
                f"the same {_count(info['images'])} images per seed")
        return f"{seen}, and a paired test over the seeds puts the gain beyond {NOISE}{_corrected(info)}"
    seen = f"the two models disagree on {_count(disagree)} of the same {_count(info['images'])} images"
    return f"{seen}, and a paired test puts the gain beyond {NOISE}{_corrected(info)}; {retraining}"


def _label(row: dict) -> str:
    """A row as a sentence names it: with every setting it changes when there are several (``label``)."""
    return row.get("label") or row["variant"]


def conclusion(rows: list[dict], info: dict, note: str = "", noise: dict | None = None) -> str:
    """One sentence from the rows' fields (rows[0] is the reference): the best significant gain with its
    evidence, then what changed nothing measurable, what was worse, what diverged; each verdict against
    the baseline's retraining spread where ``noise`` (summary.seed_noise) measured it."""
    base, variants = rows[0], rows[1:]
    if base["mean"] is None:
        return "The baseline diverged, so nothing here could be compared with it."

    def with_verdict(verdict: str) -> list[dict]:
        return sorted((r for r in variants if r["test"] and r["test"]["verdict"] == verdict),
                      key=lambda r: -r["delta_pp"])

    def accs(group: list[dict]) -> str:
        return series([pct(r["mean"], 2) for r in group])

    def subject(group: list[dict]) -> tuple[str, str]:
        return series([_label(r) for r in group]), "s" if len(group) == 1 else ""

    better, same, worse = (with_verdict("better"), with_verdict("no measurable difference"),
                           with_verdict("worse"))
    clauses = []
    if len(better) > 1:
        names, s = subject(better[1:])
        clauses.append(f"{names} also raise{s} it, to {accs(better[1:])}")
    if same:
        names, s = subject(same)
        clauses.append(f"{names} change{s} nothing measurable ({accs(same)})")
    if worse:
        names, s = subject(worse[::-1])
        clauses.append(f"{names} lower{s} it to {accs(worse[::-1])}")
    diverged = [r for r in variants if r["status"] == "diverged"]
    if diverged:
        clauses.append(f"{series([_label(r) for r in diverged])} diverged")
    untested = [r for r in variants if r["test"] is None and r["status"] != "diverged"]
    if untested:
        names, s = subject(untested)
        clauses.append(f"{names} reach{'es' if s else ''} {accs(untested)} "
                       "but had no per-image results to test")
    if better:
        top = better[0]
        text = (f"{_label(top)} raises validation accuracy from {pct(base['mean'], 2)} to "
                f"{pct(top['mean'], 2)} ({top['delta_pp']:+.2f} pp; "
                f"{_evidence(top['test'], info, _retraining([top], noise))})")
        text += f", while {series(clauses)}" if clauses else ""
    elif worse:   # a significant loss is the finding: said first, never folded into "no variant beats"
        names, s = subject(worse[::-1])
        text = (f"{names} lower{s} validation accuracy from {pct(base['mean'], 2)} to {accs(worse[::-1])} "
                f"beyond {NOISE} (a paired test on the same {_count(info['images'])} images{_family(info)}"
                f"{'; ' + _retraining(worse, noise) if info['seeds'] <= 1 else ''}), and no variant raises "
                "it")
        rest = [c for c in clauses if not c.startswith(names + " lower")]
        text += f"; {series(rest)}" if rest else ""
    elif info["k"]:
        text = (f"No variant beats the baseline's {pct(base['mean'], 2)} beyond {NOISE} (a paired test "
                "on the "
                f"same {_count(info['images'])} images{_family(info)}): {series(clauses)}")
    else:
        text = f"No variant could be tested against the baseline's {pct(base['mean'], 2)}: {series(clauses)}"
    text = text[0].upper() + text[1:]
    return text + ("; " + note if note else "") + "."


def combination_text(c: dict[str, Any]) -> str:
    """How the combination was made, as the clause the method paragraph ends with."""
    text = "then the combination of each axis's best value"
    if c["limit_tmacs"]:
        text += f" whose final training fits the budget of {c['limit_tmacs']:g} TMAC"
    text += f" is the grid's {c['same_as']}, so it was not trained again" if c["same_as"] else " was trained"
    left_out = [f"{x['best']}, the best of {x['axis'].replace('_', ' ')}, needs {x['best_tmacs']:.3g} TMAC, "
                f"so it kept {x['instead']}" for x in c["left_out"]]
    return text + (f" ({'; '.join(left_out)})" if left_out else "")


def combination_notes(c: dict[str, Any], noise: dict | None = None) -> list[str]:
    """Sentences on how the combination was made and what it shows: each key two axes set differently and
    which won, each value that ends up changing nothing, the values the grid's test did not support, and
    the combination against the best single variant."""
    notes = []
    for x in c.get("conflicts", []):
        set_to = series([f"{axis.replace('_', ' ')} to {fgrid.shown_value(v)}"
                         for axis, v in x["values"].items()])
        notes.append(f"Two axes set {x['key']} ({set_to}): the combination keeps "
                     f"{x['kept'].replace('_', ' ')}'s, because {x['why']}.")
    for x in c.get("no_ops", []):
        keys = "; ".join(f"{k}: {why}" for k, why in x["keys"].items())
        notes.append(f"The {x['axis'].replace('_', ' ')} axis's {x['value']} changes nothing in the "
                     f"combination ({keys}), so it is not a choice.")
    weak = c.get("unsupported") or {}
    if weak:
        taken = series([f"{v['value']} ({axis.replace('_', ' ')})" for axis, v in weak.items()])
        which = "it" if len(weak) == 1 else "neither" if len(weak) == 2 else "none of them"
        notes.append(f"It takes {taken}, although the grid's test found {which} measurably better than the "
                     "baseline: each axis gives its best point estimate, not a tested gain.")
    vs = c.get("vs_best")
    if vs:
        within = " within the budget" if c.get("limit_tmacs") else ""
        notes.append(f"Against the best single variant{within}, {vs['against'].split(': ', 1)[-1]}, "
                     f"the combination differs by {vs['delta_pp']:+.2f} pp: {vs['verdict']} (the two "
                     "disagree "
                     f"on {_count(sum(vs['discordant']))} images; paired test, Holm over the "
                     "combination's two "
                     f"comparisons, adjusted {p_value(vs['p_adjusted'])}; "
                     f"{_retraining([{'retraining': fsum.against_noise(vs['delta_pp'], noise)}], noise)}).")
    return notes


def picked_from_the_grid(accuracies: dict[str, Any]) -> str:
    """What a choice made at grid scale does not show: its lead was measured on the images that picked it
    (the best of k), and nothing retrained it against the baseline with the final model's recipe."""
    test = accuracies.get("chosen_test")
    lead = ""
    if test:
        adjusted = p_value(test["p_adjusted"])
        lead = f" ({test['delta_pp']:+.2f} pp; paired test: {test['verdict']}, adjusted {adjusted})"
    return (f"It was picked from {accuracies['pool_size']} grid configurations by the same validation images "
            f"that measure its lead over the baseline{lead}, so that lead is biased upward, and no finalist "
            f"stage retrained the two at full scale to check it (the full preset does).")
