"""Submitted notebooks for the grader's tests: built with nbformat as Jupyter would save them."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

CODE = {
    1: "def normalize_tensor(t):\n    low, high = t.min(), t.max()\n    return (t - low) / (high - low)\n",
    2: "units = [300, 12, 77]\nfor unit in units:\n"
       "    print(unit, activations[unit].max())\n",
    3: "cams = features.reshape(2048, 64).T @ fc_weight.T\nprint(cams.shape)\n",
    4: "def get_prediction(image, net):\n    logits = net(image.unsqueeze(0))\n"
       "    return int(logits.argmax(1))\n",
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


TRAIN_A = '''import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(2 * width * 7 * 7, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))

def train(net, loader, optimizer, criterion):
    net.train()
    total_loss = 0.0
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(net(images), labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
    return total_loss / len(loader.dataset)

def evaluate(net, loader):
    net.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (net(images).argmax(1) == labels).sum().item()
    return correct / len(loader.dataset)
'''

TRAIN_B = '''import numpy as np
import torch.nn.functional as F

def get_prediction(image, model):
    """Index of the most likely class."""
    with torch.inference_mode():
        scores = model(image[None])
    return int(scores.argmax())

history = {"loss": [], "acc": []}
for epoch in range(10):
    running = []
    for batch_x, batch_y in train_loader:
        opt.zero_grad()
        out = F.cross_entropy(model(batch_x), batch_y, label_smoothing=0.1)
        out.backward()
        opt.step()
        running.append(out.item())
    history["loss"].append(np.mean(running))
    hits = sum(get_prediction(img, model) == lab for img, lab in val_set)
    history["acc"].append(hits / len(val_set))
    print(f"epoch {epoch}: loss {history['loss'][-1]:.3f} val {history['acc'][-1]:.3f}")
scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
'''

RENAMES = (("Net", "MyModel"), ("width", "w"), ("features", "body"), ("head", "classifier"),
           ("total_loss", "running_loss"), ("images", "xb"), ("labels", "yb"), ("loss", "batch_loss"),
           ("correct", "n_right"), ("loader", "data_loader"), ("optimizer", "opt"), ("criterion", "loss_fn"))


def rename(source: str, renames=RENAMES) -> str:
    """The same code with local names changed, comments added and the layout reflowed (a disguised copy)."""
    import re

    for old, new in renames:
        source = re.sub(rf"\b{old}\b", new, source)
    return source.replace(" = ", "=").replace("):\n", "):  # my code\n").replace("\n\n", "\n\n\n")


def with_code(*sources: str) -> nbformat.NotebookNode:
    """A run notebook whose Problem 4 cells hold these sources."""
    nb = executed()
    for i, source in enumerate(sources):
        nb.cells.append(new_code_cell(source, execution_count=10 + i, outputs=[]))
    return nb
