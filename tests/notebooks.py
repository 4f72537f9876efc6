"""Submitted notebooks for the grader's tests: built with nbformat as Jupyter would save them."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

CODE = {
    1: "def normalize_tensor(t):\n    low, high = t.min(), t.max()\n    return (t - low) / (high - low)\n",
    2: "units = [300, 12, 77]\nfor unit in units:\n"
       "    print(unit, activations[unit].max())\n",
    3: "cams = features.reshape(2048, 64).T @ fc_weight.T\nprint(cams.shape)\n",
    4: "def get_prediction(image, net):\n    logits = net(image.unsqueeze(0))\n    return int(logits.argmax(1))\n",
}


def executed(problems=(1, 2, 3, 4), counts=None, error_in=None, code=CODE,
             extra_outputs=()) -> nbformat.NotebookNode:
    """A "Restart & Run All" notebook: a heading and one run code cell per problem."""
    nb = new_notebook()
    counts = iter(counts or range(1, 100))
    nb.cells.append(new_markdown_cell("# Miniplaces\nThe problem set's notebook."))
    for problem in problems:
        nb.cells.append(new_markdown_cell(f"#### **Problem {problem}** heading"))
        outputs = [new_output("stream", name="stdout", text=f"problem {problem} done\n"), *extra_outputs]
        if problem == error_in:
            outputs = [new_output("error", ename="NameError", evalue="name 'net' is not defined",
                                  traceback=["Traceback ..."])]
        nb.cells.append(new_code_cell(code[problem], execution_count=next(counts), outputs=outputs))
    nb.cells.append(new_code_cell("", execution_count=None))   # a blank cell is never sent to the kernel
    return nb


def unexecuted() -> nbformat.NotebookNode:
    nb = executed()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count, cell.outputs = None, []
    return nb


def to_bytes(nb: nbformat.NotebookNode) -> bytes:
    return nbformat.writes(nb).encode()


def renamed(source: str) -> str:
    """The same code with every local name changed and the layout reflowed (a disguised copy)."""
    for old, new in (("low", "lo_val"), ("high", "hi_val"), ("t", "tensor_in"), ("units", "chosen"),
                     ("unit", "u"), ("cams", "class_maps"), ("logits", "scores"), ("image", "img")):
        source = __import__("re").sub(rf"\b{old}\b", new, source)
    return source.replace(" = ", "=").replace("\n", "  # reflowed\n")
