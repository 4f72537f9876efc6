"""``grade``'s checks of a submitted notebook (``<kerberos>.ipynb`` at the zip's root), never executing it.

The problem set asks for "the python notebook provided, with the cells run". This reads the notebook
as data, in the grader's limited child process: at most ``MAX_BYTES`` (a larger one is refused, not
read), JSON nested at most ``MAX_DEPTH`` deep, then valid nbformat 4 (the ``nbformat`` package's
schema). A "Restart & Run All" leaves every code cell with an execution count, strictly increasing
in cell order (blank cells are not sent to the kernel and keep none); any error output is named by
its cell. A problem "has outputs" when a code cell after its heading (``# Problem N`` at any level,
as in the problem set) produced one. Only the file name, counts and the first error's name and
message leave this module, as plain strings: outputs (HTML, JavaScript, images) are never copied.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import nbformat

from miniplaces.grading import similarity
from miniplaces.inputs import bounded

MAX_BYTES = 50 * 2**20          # the report's notebook with its PNG outputs is a few MB
MAX_DEPTH = 64                  # nbformat needs 6; deeper JSON is an attack on the parser
PROBLEMS = (1, 2, 3, 4)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s*[*_]*\s*Problem\s+(\d+)\b", re.I | re.M)
COLUMNS = ("notebook", "notebook_ran", "notebook_errors", "notebook_outputs")


def _short(text: Any, limit: int = 160) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:limit] if lines else ""


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return False


def find(folder: Path) -> tuple[Path | None, list[str]]:
    """The notebook to check (at the root, the only one or the first by name) and layout problems."""
    at_root = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if not at_root:
        deeper = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb")
                        if p.is_file() and ".ipynb_checkpoints" not in p.parts)
        if deeper:
            return None, [f"wrong layout: the notebook {deeper[0]} is not at the zip's root"]
        return None, ["no notebook (.ipynb) at the zip's root"]
    if len(at_root) > 1:
        return at_root[0], [f"{len(at_root)} notebooks at the root; checked {at_root[0].name}"]
    return at_root[0], []


def load(path: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The notebook as a validated nbformat-4 dict; ValueError with a one-line reason otherwise."""
    try:
        data = bounded.read_bytes(path, max_bytes, "notebook")
    except bounded.InputError as exc:
        raise ValueError(f"refused: {str(exc).split(': ', 1)[-1]}") from None
    try:
        nb = json.loads(data)
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({_short(exc, 120)})") from None
    if not isinstance(nb, dict):
        raise ValueError("not a notebook: the JSON is not an object")
    if _depth_exceeds(nb, MAX_DEPTH):
        raise ValueError(f"refused: JSON nested more than {MAX_DEPTH} deep")
    if nb.get("nbformat") != 4:
        raise ValueError(f"nbformat {_short(nb.get('nbformat'), 20)}, not 4 "
                         "(save it with Jupyter 4 or later)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb, version=4)
    except nbformat.ValidationError as exc:
        raise ValueError(f"not valid nbformat 4 ({_short(getattr(exc, 'message', exc))})") from None
    except RecursionError:
        raise ValueError("not valid nbformat 4: nested too deeply") from None
    return nb


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def code_sources(nb: dict[str, Any]) -> list[str]:
    return [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]


def inspect_cells(nb: dict[str, Any]) -> dict[str, Any]:
    """Run order, the first error output and the problems with outputs of a validated notebook."""
    problem, with_outputs = None, set()
    unrun, order_break, first_error, last_count, ran = 0, "", "", 0, 0
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] == "markdown":
            headings = HEADING.findall(_source(cell))
            problem = int(headings[-1]) if headings else problem
            continue
        if cell["cell_type"] != "code" or not _source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            unrun += 1
        else:
            ran += 1
            if count <= last_count and not order_break:
                order_break = f"cell {number} (In [{count}]) ran before the one above it (In [{last_count}])"
            last_count = count
        outputs = cell.get("outputs", [])
        if outputs and problem in PROBLEMS:
            with_outputs.add(problem)
        error = next((o for o in outputs if o.get("output_type") == "error"), None)
        if error and not first_error:
            first_error = (f"cell {number}: {_short(error.get('ename'), 60)}: {_short(error.get('evalue'))}"
                           .rstrip(": "))
    total = ran + unrun
    if unrun:
        verdict = f"no: {unrun} of {total} code cells not run"
    elif order_break:
        verdict = f"no: out of order, {order_break}"
    else:
        verdict = f"yes, all {total} code cells in order"
    return {"notebook_ran": verdict, "notebook_errors": first_error or "none",
            "notebook_outputs": " ".join(str(p) for p in sorted(with_outputs))}


def check_folder(folder: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The notebook's row fields, its problems (one line each) and its code's shingles."""
    path, problems = find(folder)
    out: dict[str, Any] = {"notebook": "missing", "notebook_ran": "", "notebook_errors": "",
                           "notebook_outputs": "", "problems": problems, "shingles": []}
    if path is None:
        return out
    out["notebook"] = path.name
    try:
        nb = load(path, max_bytes)
    except ValueError as exc:
        out["notebook"] = f"{path.name}: {exc}"
        out["problems"].append(f"notebook {path.name} {exc}")
        return out
    except MemoryError:
        out["notebook"] = f"{path.name}: too large to read within the memory limit"
        out["problems"].append(out["notebook"])
        return out
    out.update(inspect_cells(nb))
    if out["notebook_ran"].startswith("no"):
        out["problems"].append(f"notebook: {out['notebook_ran'][4:]} (use Restart & Run All)")
    if out["notebook_errors"] != "none":
        out["problems"].append(f"notebook error in {out['notebook_errors']}")
    missing = [str(p) for p in PROBLEMS if str(p) not in out["notebook_outputs"].split()]
    if missing:
        out["problems"].append(f"notebook: no outputs under Problem {', '.join(missing)}")
    out["shingles"] = similarity.code_shingles(code_sources(nb))
    return out


def take(row: dict[str, Any], answer: Any) -> list[int]:
    """Copy the child's notebook answer into the row (known fields, strings only); its shingles."""
    if not isinstance(answer, dict):
        return []
    for key in COLUMNS:
        if isinstance(answer.get(key), str):
            row[key] = answer[key][:300]
    row["problems"] += [p[:300] for p in answer.get("problems", []) if isinstance(p, str)]
    shingles = answer.get("shingles")
    return [s for s in shingles if isinstance(s, int)] if isinstance(shingles, list) else []
