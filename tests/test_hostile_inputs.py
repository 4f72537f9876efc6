"""Hostile inputs (issue 15): every bad input ends in exit 2 (or a documented warning) with one line
naming the file, in bounded memory and time. Probes that could exhaust memory or block run under an
address-space limit and an alarm (``bounded``), so a regression fails a test instead of the machine."""
import contextlib
import gzip
import json
import os
import resource
import signal
import struct
from dataclasses import replace
from pathlib import Path

import pytest

import generate_report
from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist import grid as fgrid
from miniplaces import atomic, outdir
from miniplaces.errors import UserError
from miniplaces.inputs import places_model, scenes
from miniplaces.report.sections import fashion_mnist as fm_section

ROOT = Path(__file__).resolve().parent.parent
TINY_GRID = '[base]\nepochs = 1\nchannels = [4, 8]\n[axes]\nlr = [{lr = 0.01}]\n'
IDX_IMAGES = struct.pack(">BBBBIII", 0, 0, 8, 3, 60_000, 28, 28)


@contextlib.contextmanager
def bounded(headroom: int = 1 << 30, seconds: int = 5):
    """Run a probe with at most ``headroom`` bytes of address space more than the process has now and
    ``seconds`` before an alarm: a reader that loads a device or a bomb whole hits MemoryError, one
    that blocks on a pipe is cut by TimeoutError. Both limits are lifted again afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()

    def alarm(*_):
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    resource.setrlimit(resource.RLIMIT_AS, (used + headroom, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


# --- 1. unbounded reads ----------------------------------------------------------------------------

@pytest.mark.parametrize("read", [fm_section.load_grid, places_model.parse_categories],
                         ids=["grid", "categories"])
def test_devices_and_pipes_are_refused_without_reading(read, fifo):
    for path in (Path("/dev/zero"), fifo):
        with bounded(), pytest.raises(UserError, match="not a regular file") as info:
            read(path)
        assert str(path) in str(info.value)


def test_a_concepts_device_is_a_warning_naming_it(fifo):
    warnings = []
    for path in (Path("/dev/zero"), fifo):
        with bounded():
            assert scenes.load_concepts(path, (100, 100), warnings.append) == {}
        assert f"concepts file {path}: not a regular file" in warnings[-1]


def test_an_oversized_grid_is_refused_by_size(tmp_path):
    path = _write(tmp_path, b"# padding\n" * 300_000)
    with pytest.raises(UserError, match="more than the"):
        fm_section.load_grid(path)


def _main(tmp_path, capsys, *args) -> tuple[int, list[str]]:
    """generate_report's main in this process (no interpreter start): (exit code, stderr lines)."""
    code = generate_report.main(["--only", "fashion_mnist", "--offline", "--no-pdf", "--no-notebook",
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                                 *args])
    return code, capsys.readouterr().err.strip().splitlines()


def test_cli_refuses_a_fifo_grid_with_exit_2_and_one_line(tmp_path, fifo, capsys):
    with bounded():
        code, lines = _main(tmp_path, capsys, "--grid", str(fifo))
    assert code == 2 and len(lines) == 1 and "not a regular file" in lines[0] and str(fifo) in lines[0], lines


# --- 2. --data-dir is used or refused ----------------------------------------------------------------

def test_data_dir_that_does_not_exist_or_lacks_a_file_is_refused(tmp_path):
    with pytest.raises(fdata.DataError, match="no such folder"):
        fdata.locate(tmp_path / "nonexistent", None, offline=True)
    for stem in list(fdata.FILES.values())[:3]:
        (tmp_path / (stem + ".gz")).write_bytes(b"")
    with pytest.raises(fdata.DataError, match="t10k-labels-idx1-ubyte"):
        fdata.locate(tmp_path, None, offline=True)


def test_cli_data_dir_that_does_not_exist_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(fm_section, "run_specs", no_training)
    code, lines = _main(tmp_path, capsys, "--data-dir", str(tmp_path / "nonexistent"), "--grid",
                        str(_write(tmp_path, TINY_GRID)))
    assert code == 2 and len(lines) == 1 and "--data-dir" in lines[0] and "no such folder" in lines[0], lines
    assert not (tmp_path / "cache" / "results").exists()


# --- 5. bad input is exit 2 (or a warning) naming the file, not a crash ------------------------------

def _write(tmp_path: Path, content: str | bytes, name: str = "g.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content, words", [
    (b"[base]\nepochs = 1 # \xff\n", "not UTF-8"),
    ("a = " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("[base]\nepochs = " + "7" * 5000, "not valid TOML"),
    ("[base]\nhidden = 100000000000\n", "base.hidden"),
    ("[base]\nchannels = [1000000000]\n", "base.channels"),
    ("[base]\nlr = 1e400\n", "finite"),
])
def test_bad_grid_files_are_user_errors_naming_the_file(tmp_path, content, words):
    path = _write(tmp_path, content)
    with pytest.raises(UserError, match=words) as info:
        fm_section.load_grid(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value) and len(str(info.value)) < 500


@pytest.mark.parametrize("content, words", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"concepts": {"sky": [{"box": [0, 0, ' + "9" * 5000 + ', 5]}]}}', "malformed JSON"),
    (b'{"concepts": {"sky": [{"box": [0, 0, 5, 5]}]}} \xff', "not UTF-8"),
])
def test_bad_concepts_files_are_warnings_naming_the_file(tmp_path, content, words):
    warnings = []
    path = _write(tmp_path, content, "x.concepts.json")
    assert scenes.load_concepts(path, (100, 100), warnings.append) == {}
    assert any(words in w and str(path) in w for w in warnings), warnings


def _idx_gz(tmp_path: Path, raw: bytes, name: str = "t10k-labels-idx1-ubyte.gz") -> Path:
    return _write(tmp_path, gzip.compress(raw), name)


def test_corrupt_idx_stream_and_absurd_header_name_the_file(tmp_path):
    good = gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 100_000) + os.urandom(100_000))
    corrupt = _write(tmp_path, good[:2000] + bytes(b ^ 0x55 for b in good[2000:4000]) + good[4000:], "c.gz")
    with pytest.raises(fdata.DataError, match="unreadable") as info:
        fdata.read_idx(corrupt)
    assert str(corrupt) in str(info.value)
    many_dims = _idx_gz(tmp_path, bytes([0, 0, 8, 255]) + bytes(16))
    with pytest.raises(fdata.DataError, match="255 dimensions"):
        fdata.read_idx(many_dims)


# --- 6. decompression is bounded by the header --------------------------------------------------------

def test_gzip_bomb_is_refused_within_the_header_size(tmp_path):
    zeros = gzip.compress(bytes(64 << 20))
    with open(tmp_path / "bomb.gz", "wb") as handle:   # 8 GiB of zeros after a valid header, in 8 MB
        handle.write(gzip.compress(IDX_IMAGES))
        for _ in range(128):
            handle.write(zeros)
    with bounded(), pytest.raises(fdata.DataError, match="longer than") as info:
        fdata.read_idx(tmp_path / "bomb.gz")
    assert str(tmp_path / "bomb.gz") in str(info.value)
    huge = _idx_gz(tmp_path, struct.pack(">BBBBIII", 0, 0, 8, 3, 2**31, 2**16, 2**16), "huge.gz")
    with bounded(), pytest.raises(fdata.DataError, match="more than any FashionMNIST file"):
        fdata.read_idx(huge)


def test_idx_reader_still_reads_exact_files_and_names_truncation(tmp_path):
    labels = bytes(range(10)) * 3
    path = _idx_gz(tmp_path, struct.pack(">BBBBI", 0, 0, 8, 1, 30) + labels)
    assert fdata.read_idx(path).tolist() == list(labels)
    short = _idx_gz(tmp_path, struct.pack(">BBBBI", 0, 0, 8, 1, 31) + labels, "short.gz")
    with pytest.raises(fdata.DataError, match="truncated"):
        fdata.read_idx(short)


# --- 7. every size has an upper bound -------------------------------------------------------------------

@pytest.mark.parametrize("raw, words", [
    ({"base": {"epochs": 1_000_000_000}}, "base.epochs: 1000000000 must be an integer from 1 to 1000"),
    ({"base": {"batch_size": 10**7}}, "base.batch_size"),
    ({"base": {"depth": 10**6}}, "base.depth"),
    ({"repeats": 10**6, "base": {"epochs": 1}}, "repeats"),
    ({"data": {"train_subset": 10**9}, "base": {"epochs": 1}}, "data.train_subset"),
    ({"base": {"epochs": 1000, "channels": [256, 256, 256], "depth": 16}}, "TMAC"),
    ({"base": {"epochs": 1, "channels": [1024], "hidden": 16384}}, "weights"),
    ({"base": {"epochs": 1}, "axes": {"lr": [{"lr": 0.001 * i} for i in range(1, 3000)]}}, "trials"),
])
def test_sizes_above_their_bound_are_refused_with_the_key(raw, words):
    with pytest.raises(fgrid.GridError, match=words):
        fgrid.parse_grid(raw, "g.toml")


def test_shipped_grids_are_within_the_bounds():
    for name in ("quick", "standard", "full"):
        assert fm_section.load_grid(ROOT / "grids" / f"{name}.toml").axes


@pytest.mark.parametrize("args", [["--image-size", "100000"], ["--sweep-limit", "10000000"], ["--seed", "-1"],
                                  ["--out", ""], ["--grid", ""], ["--submission", "bob\n"]])
def test_cli_bounds_and_names_are_checked_before_any_work(args, capsys):
    with pytest.raises(SystemExit) as info:
        generate_report.parse_args(args)
    assert info.value.code == 2 and args[0] in capsys.readouterr().err


# --- 8. one run's outputs are one set; temporaries are cleaned -------------------------------------------

def test_lock_removes_temporaries_left_by_a_killed_run(tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    leftovers = [out / ".report.html.x1.tmp", out / "figures" / ".fm.png.x2.tmp"]
    for path in leftovers:
        path.write_text("half")
    (out / "figures" / "keep.png").write_text("a figure")
    with outdir.lock_out_dir(out):
        assert not any(p.exists() for p in leftovers) and (out / "figures" / "keep.png").exists()


def test_cache_spares_young_temporaries_another_run_may_be_writing(tmp_path):
    folder = tmp_path / "results" / "ns"
    folder.mkdir(parents=True)
    old, young = folder / ".a.pkl.1.tmp", folder / ".b.pkl.2.tmp"
    for path in (old, young):
        path.write_text("x")
    os.utime(old, (1, 1))
    assert atomic.remove_leftovers([folder], older_than_s=3600) == 1 and young.exists() and not old.exists()


def test_a_run_interrupted_after_validation_leaves_no_earlier_report_beside_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in outdir.REPORT_FILES:
        (out / name).write_text("from an earlier run")

    def interrupted(ctx):
        raise KeyboardInterrupt
    monkeypatch.setattr(fm_section, "run", interrupted)
    config = generate_report.parse_args(["--only", "fashion_mnist", "--preset", "quick", "--no-pdf", "--out",
                                         str(out), "--cache-dir", str(tmp_path / "cache")])
    with pytest.raises(KeyboardInterrupt):
        generate_report.run(config)
    assert not [name for name in outdir.REPORT_FILES if (out / name).exists()]


def test_a_run_refused_at_validation_keeps_the_earlier_report(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    bad_grid = _write(tmp_path, "[base]\nx = 1")
    config = generate_report.parse_args(["--only", "fashion_mnist", "--grid", str(bad_grid), "--out",
                                         str(out), "--cache-dir", str(tmp_path / "cache")])
    with pytest.raises(UserError):
        generate_report.run(config)
    assert (out / "results.json").read_text() == "{}"


# --- 9. names, boxes and polygons -----------------------------------------------------------------------

def test_axes_whose_names_differ_only_in_punctuation_get_distinct_figures():
    from analyses.fashion_mnist import selection as fsel

    grid = fgrid.parse_grid({"base": {"epochs": 1, "channels": [4, 8]},
                             "axes": {"a-b": [{"lr": 0.01}], "a_b": [{"lr": 0.02}], "a b": [{"lr": 0.03}]}},
                            "g.toml")

    def execute(specs, stage):
        return [({"seed": s.seed, "val_correct": None, "val_acc": 0.5 + 0.01 * i, "status": "ok",
                  "error": None, "train_s": 1.0, "history": []}, False) for i, s in enumerate(specs)]
    sel = fsel.select(replace(grid, combine=False), fgrid.one_at_a_time(grid, 0), 0, execute, 60_000)
    from analyses.fashion_mnist import summary as fsum

    figures = [axis["figure"] for axis in fm_section._axes_json(fsum.axis_tables(grid, sel))]
    assert len(set(f.lower() for f in figures)) == 3 and all(f.isascii() for f in figures), figures


def test_a_box_reaching_far_outside_is_clipped_not_dropped(tmp_path):
    warnings = []
    far = {"sky": [{"box": [0, 0, 1e308, 1e308]}],
           "sea": [{"polygon": [[-1e308, 50], [1e308, 50], [0, 1e308]]}]}
    path = _write(tmp_path, json.dumps({"concepts": far}), "x.concepts.json")
    concepts = scenes.load_concepts(path, (100, 100), warnings.append)
    assert scenes.rasterise(concepts["sky"], (100, 100), (100, 100)).all()
    sea = scenes.rasterise(concepts["sea"], (100, 100), (100, 100))
    assert sea[50:].all() and not sea[:49].any()
    assert any("clipped" in w for w in warnings)


def test_polygons_with_too_many_points_are_ignored_with_a_warning(tmp_path):
    warnings = []
    ring = [[50 + 40 * (i % 2), 50 + 40 * ((i // 2) % 2)] for i in range(scenes.MAX_POLYGON_POINTS + 1)]
    doc = {"concepts": {"sky": [{"polygon": ring}], "sea": [{"box": [0, 0, 9, 9]}]}}
    path = _write(tmp_path, json.dumps(doc), "x.concepts.json")
    concepts = scenes.load_concepts(path, (100, 100), warnings.append)
    assert "sky" not in concepts and "sea" in concepts
    assert any(f"{scenes.MAX_POLYGON_POINTS + 1} points" in w and str(path) in w for w in warnings), warnings



def test_many_boxes_are_bounded_work_and_repeated_faults_one_warning(tmp_path):
    """2 000 boxes (the issue's 90 000 fit in the 2 MiB too): only MAX_FILE_SHAPES are kept, so loading
    rasterises at most that many; 60 000 bad polygons and 5 000 unknown names give a line each."""
    boxes = [{"box": [i % 50, i % 40, 60 + i % 30, 70 + i % 20]} for i in range(2000)]
    bad = [{"polygon": [[1, 2]]}] * 60_000
    unknown = {f"thing{i}": [] for i in range(5000)}
    doc = {"concepts": {"sea": bad, "sky": boxes, **unknown}}
    path = _write(tmp_path, json.dumps(doc), "x.concepts.json")
    warnings = []
    concepts = scenes.load_concepts(path, (256, 256), warnings.append)
    assert len(concepts["sky"]) == scenes.MAX_FILE_SHAPES and "sea" not in concepts
    assert len(warnings) == 3, warnings[:5]
    assert any("shapes 65, 66, 67 and 1933 more: over the 64 shapes a file may have" in w for w in warnings)
    assert any("shapes 1, 2, 3 and 59997 more: not a polygon" in w for w in warnings)
    assert any("unknown concepts 'thing0', 'thing1', 'thing2' and 4997 more ignored" in w for w in warnings)


def test_boxes_count_against_the_points_of_a_file(tmp_path):
    ring = [[10 + i % 2, 10 + (i // 2) % 2 * 5] for i in range(scenes.MAX_POLYGON_POINTS)]
    doc = {"concepts": {"sky": [{"polygon": ring}, {"polygon": ring}], "sea": [{"box": [0, 0, 9, 9]}]}}
    warnings = []
    concepts = scenes.load_concepts(_write(tmp_path, json.dumps(doc), "x.concepts.json"), (100, 100),
                                    warnings.append)
    assert "sea" not in concepts
    assert any("shape 1: over the 2000 points a file may have" in w for w in warnings), warnings

# --- 4. a killed Ray run's folder is removed by the next -------------------------------------------------

def test_tune_folders_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    from miniplaces.report.trial_runner import remove_stale_tune_folders

    dead, live = tmp_path / "fm-tune-999999999-abc", tmp_path / f"fm-tune-{os.getpid()}-def"
    for folder in (dead, live):
        (folder / "fashion_mnist").mkdir(parents=True)
    assert remove_stale_tune_folders(tmp_path) == [dead] and live.is_dir()
