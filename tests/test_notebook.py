"""report.ipynb: built from the running code, run in a real kernel, standalone, and packed for submission."""
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from miniplaces.report.notebook import cells
from miniplaces.report.notebook import kernel as nbexec
from miniplaces.report.notebook.source import Program, SourceError

PROBLEM_SET_NAMES = ("normalize_tensor", "visualize_filters", "generate_featuremap_unit", "train",
                     "get_prediction", "evaluate")
FIGURES = ("1b", "2a", "2b", "2c", "3c", "3d", "4c", "4d")     # sub-questions whose cells draw


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


# ----------------------------------------------------------------------------- the code it carries

def test_a_cell_carries_a_definition_and_what_it_needs_in_an_order_that_runs():
    program = Program()
    source = program.cell("analyses.fashion_mnist.train.fit", "analyses.fashion_mnist.train.TrialConfig")
    for needed in ("def fit(", "class TrialConfig", "class ModelConfig", "def batches(", "def augment(",
                   "def make_optimizer(", "FIELDS = "):
        assert needed in source, needed
    # definition-time needs come first: ModelConfig's defaults feed TrialConfig, TrialConfig feeds FIELDS
    assert source.index("class ModelConfig") < source.index("class TrialConfig") < source.index("FIELDS = ")
    assert "fit(" not in program.cell("analyses.fashion_mnist.train.fit")   # each definition once
    namespace: dict = {}
    exec(compile("from __future__ import "
                 "annotations\n" + program.import_cell() + "\n" + source, "nb", "exec"),
         namespace)
    assert namespace["TrialConfig"]().model_config() == namespace["ModelConfig"]()
    assert not re.search(r"^\s*(from|import) (analyses|miniplaces)", program.import_cell(), re.M)


def test_a_project_module_used_by_name_or_a_clash_is_refused_when_the_notebook_is_built(tmp_path,
                                                                                        monkeypatch):
    package = tmp_path / "nbfixture"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(textwrap.dedent("""\
        from . import b as bmod
        from .b import helper


        def via_module():
            return bmod.helper()


        def helper_user():
            return helper()
        """))
    (package / "b.py").write_text("def helper():\n    return 1\n")
    (package / "c.py").write_text("def helper():\n    return 2\n\n\ndef other():\n    return helper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SourceError, match="project module"):
        Program(project=("nbfixture",)).cell("nbfixture.a.via_module")
    program = Program(project=("nbfixture",))
    assert "def helper" in program.cell("nbfixture.a.helper_user")
    with pytest.raises(SourceError, match="share one name"):
        program.cell("nbfixture.c.other")


# ----------------------------------------------------------------------------- the kernel

def _notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


@pytest.mark.slow
@pytest.mark.parametrize("source, words", [
    ("raise ValueError('bad input')", ["cell 2", "ValueError: bad input"]),
    ("import os\nos._exit(3)", ["kernel died", "cell 2"]),
    ("import time\ntime.sleep(60)", ["cell 2", "longer than 3 s"]),
    ("import miniplaces", ["cell 2", "must not import miniplaces-report"]),
])
def test_a_failing_cell_a_dead_kernel_a_stuck_cell_and_a_project_import_each_end_with_one_line(
        tmp_path, source, words):
    with pytest.raises(nbexec.NotebookError) as failure:
        nbexec.execute(_notebook("x = 1", source, "y = 2"), tmp_path, cell_timeout_s=3)
    message = str(failure.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.slow
def test_figures_are_inline_png_even_when_the_environment_says_agg(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ran = nbexec.execute(_notebook("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"), tmp_path,
                         cell_timeout_s=60)
    assert any("image/png" in o.get("data", {}) for o in ran.cells[0].outputs)


# ----------------------------------------------------------------------------- the quick report's notebook

def test_the_quick_report_writes_a_valid_notebook_with_every_cell_run(quick_report):
    out, results = quick_report["out"], quick_report["results"]
    nb = nbformat.read(out / "report.ipynb", as_version=4)
    nbformat.validate(nb)
    code = code_cells(nb)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert code[0].metadata["tags"] == ["parameters"]
    figures = results["notebook"]["figures"]
    for key in FIGURES:
        assert figures.get(key, 0) >= 1, (key, figures)
    scenes = len(results["scenes"])
    assert figures["3d"] >= scenes and figures["1b"] == len(results["filters"]["layers"])
    sources = "\n".join(c.source for c in code)
    for name in PROBLEM_SET_NAMES:
        assert re.search(rf"^def {name}\(", sources, re.M), name
    assert not re.search(r"^\s*(from|import) (analyses|miniplaces|generate_report)\b", sources, re.M)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    assert [h for h in headings if h.startswith("# Problem")] == [
        "# Problem 1: Filter Visualization", "# Problem 2: Internal Activation Visualization",
        "# Problem 3: Class Activation Map (CAM)", "# Problem 4: Network Training"]
    final = "".join(o.get("text", "") for o in code[-1].outputs)
    assert f"test accuracy: {results['fashion_mnist']['final']['test_acc']:.2%}" in final


def test_the_notebook_cells_hold_the_running_code(quick_report):
    """Never a second copy: the cell holds the function's current source, word for word."""
    import inspect

    from analyses.fashion_mnist.train import evaluate, train
    from analyses.filters import normalize_tensor

    sources = "\n".join(c.source for c in code_cells(nbformat.read(quick_report["out"] / "report.ipynb", 4)))
    for func in (normalize_tensor, train, evaluate, cells.visualize_filters, cells.generate_featuremap_unit):
        assert inspect.getsource(inspect.unwrap(func)).strip() in sources, func.__name__


@pytest.mark.slow
def test_papermill_reruns_it_with_the_project_hidden_and_gets_the_same_test_accuracy(quick_report, tmp_path):
    """A grader's machine: papermill, parameters from the command line, no miniplaces anywhere."""
    pytest.importorskip("papermill")
    out, results = quick_report["out"], quick_report["results"]
    params = results["notebook"]["parameters"]
    work = tmp_path / "grader"
    work.mkdir()
    shutil.copy(out / "report.ipynb", work / "jdoe.ipynb")
    shutil.copytree(out / "notebook_images", work / "notebook_images")
    shutil.copy(out / params["MODEL_FILE"], work / "model.pt")
    hide = tmp_path / "hide"
    hide.mkdir()
    env = nbexec.kernel_env(hide)        # the same import blocker the report's own run uses
    env.pop("MPLBACKEND")
    assert subprocess.run([sys.executable, "-c", "import miniplaces"], env=env, cwd=work,
                          capture_output=True).returncode != 0
    command = [sys.executable, "-m", "papermill", "jdoe.ipynb", "ran.ipynb", "--cwd", str(work),
               "-p", "MODEL_FILE", "model.pt", "-p", "FASHION_MNIST_DIR", params["FASHION_MNIST_DIR"],
               "-p", "RETRAIN", "False", "--execution-timeout", "300"]
    ran = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    nb = nbformat.read(work / "ran.ipynb", as_version=4)
    assert not [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    final = "".join(o.get("text", "") for o in code_cells(nb)[-1].outputs)
    assert f"test accuracy: {results['fashion_mnist']['final']['test_acc']:.2%}" in final
    assert any(t == "injected-parameters" for c in nb.cells for t in c.metadata.get("tags", []))


def test_the_model_file_loads_with_weights_only_and_the_notebooks_own_class(quick_report):
    import torch

    out, results = quick_report["out"], quick_report["results"]
    blob = torch.load(out / results["fashion_mnist"]["final"]["model_file"], weights_only=True)
    namespace: dict = {}
    program = Program()
    source = program.cell("analyses.fashion_mnist.model.SmallCNN", "analyses.fashion_mnist.model.ModelConfig")
    exec(compile("from __future__ import "
                 "annotations\n" + program.import_cell() + "\n" + source, "nb", "exec"),
         namespace)
    net = namespace["SmallCNN"](namespace["ModelConfig"].from_dict(blob["config"]))
    net.load_state_dict(blob["state_dict"])
    assert type(net).__module__ != "analyses.fashion_mnist.model"


INTERRUPTED = """\
import sys
from pathlib import Path

import nbformat

from miniplaces.report.notebook import kernel

cell = "import os, time\\nprint(os.getpid(), flush=True)\\ntime.sleep(120)"
try:
    kernel.execute(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), Path(sys.argv[1]), 300)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_while_a_cell_runs_ends_as_interrupted_and_stops_the_kernel(tmp_path):
    """The kernel runs in a session of its own, so the terminal's Ctrl-C reaches only us: we must stop it."""
    import signal
    import time

    script = tmp_path / "run.py"
    script.write_text(INTERRUPTED)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], start_new_session=True,
                               cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    kernels = []
    while not kernels and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        kernels = [p for p in Path("/proc").glob("[0-9]*") if _is_our_kernel(p, tmp_path)]
    assert kernels, "the kernel did not start"
    time.sleep(2)   # inside the sleeping cell
    os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - start < 10, stderr[-2000:]
    time.sleep(1)
    assert not [p for p in kernels if p.exists()], "a kernel outlived the run"


def _is_our_kernel(proc: Path, tmp_path: Path) -> bool:
    try:
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return "ipykernel_launcher" in command and Path(os.readlink(proc / "cwd")) == tmp_path
    except OSError:
        return False
