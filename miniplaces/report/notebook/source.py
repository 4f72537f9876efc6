"""The notebook's code cells, read from the running code: a definition and everything it needs.

``Program`` collects top-level definitions (functions, classes, constants) by their dotted names and
follows the names each one uses to the definitions and imports it depends on, across the project's
modules, so that a cell holds exactly the source that ran, never a second copy. What the notebook
may not use is refused when the notebook is built, not when a grader runs it: a name bound to a
project module (``fdata.load``) would not exist there, so it is an error naming the definition.
"""
from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PROJECT = ("analyses", "miniplaces")     # top-level packages whose code is copied, never imported


class SourceError(Exception):
    """A definition that cannot be carried into a standalone notebook."""




@dataclass(frozen=True)
class Module:
    """One project module read for its top-level definitions and imports."""

    name: str
    lines: tuple[str, ...]
    defs: dict[str, ast.stmt]                 # name -> top-level statement that binds it
    imports: dict[str, tuple[str, str | None, str]]   # bound name -> (module, attribute or None, statement)


@cache
def read_module(name: str) -> Module:
    module = importlib.import_module(name)
    text = Path(inspect.getsourcefile(module)).read_text()
    tree = ast.parse(text)
    defs: dict[str, ast.stmt] = {}
    imports: dict[str, tuple[str, str | None, str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        defs[leaf.id] = node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                statement = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                imports[bound] = (alias.name if alias.asname else bound, None, statement)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), module.__package__) \
                if node.level else node.module
            for alias in node.names:
                bound = alias.asname or alias.name
                renamed = f" as {alias.asname}" if alias.asname else ""
                statement = f"from {base} import {alias.name}{renamed}"
                imports[bound] = (base, alias.name, statement)
    return Module(name, tuple(text.splitlines()), defs, imports)


def segment(module: Module, node: ast.stmt) -> str:
    """The statement's full lines, decorators and trailing comments included."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(module.lines[first - 1:node.end_lineno])


def _loads(nodes) -> list[str]:
    names: dict[str, None] = {}
    for node in nodes:
        for leaf in ast.walk(node):
            if isinstance(leaf, ast.Name) and isinstance(leaf.ctx, ast.Load):
                names.setdefault(leaf.id, None)
    return list(names)


def _function_now(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """What a ``def`` evaluates when it runs: decorators and default values (annotations are strings
    under ``from __future__ import annotations``, which every project module and the notebook have)."""
    return [*node.decorator_list, *node.args.defaults, *[d for d in node.args.kw_defaults if d]]


def used_names(node: ast.stmt) -> tuple[list[str], list[str]]:
    """(names read when the statement runs, names read only later, when a function in it is called).

    A definition needs the first kind before it and the second only before its first call, so two
    definitions that call each other can both be emitted. Locals are included: a harmless superset."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _loads(_function_now(node)), _loads(node.body)
    if isinstance(node, ast.ClassDef):
        now: list[ast.AST] = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
        later: list[ast.AST] = []
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                now += _function_now(statement)
                later += statement.body
            elif isinstance(statement, ast.AnnAssign):
                now += [statement.value] if statement.value else []
            else:
                now.append(statement)
        return _loads(now), _loads(later)
    if isinstance(node, ast.AnnAssign):
        return _loads([node.value] if node.value else []), []
    return _loads([node]), []


@dataclass
class Program:
    """Definitions in the order a notebook must run them, each emitted once, with their imports."""

    project: tuple[str, ...] = PROJECT
    emitted: set[tuple[str, str]] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)       # notebook global -> module defining it
    imports: dict[str, None] = field(default_factory=dict)     # import statements, first use first

    def cell(self, *dotted: str) -> str:
        """The source of ``dotted`` definitions and of what they need that no earlier cell defined."""
        parts: list[str] = []
        for name in dotted:
            module, _, attr = name.rpartition(".")
            self._emit(module, attr, parts, via=name)
        return "\n\n\n".join(parts)

    def _emit(self, module_name: str, name: str, parts: list[str], via: str) -> None:
        key = (module_name, name)
        if key in self.emitted:
            return
        module = read_module(module_name)
        node = module.defs.get(name)
        if node is None:
            if name in module.imports:
                self._follow(module, name, parts, via)
                return
            raise SourceError(f"{module_name}.{name}: no top-level definition (needed by {via})")
        if self.owners.setdefault(name, module_name) != module_name:
            raise SourceError(f"{module_name}.{name} and {self.owners[name]}.{name} would share one name in "
                              f"the notebook (needed by {via}); rename one")
        self.emitted.add(key)   # before the dependencies: a class that names itself must not recurse
        now, later = used_names(node)
        self._emit_all(module, now, parts, via=f"{module_name}.{name}")
        parts.append(segment(module, node))
        self._emit_all(module, later, parts, via=f"{module_name}.{name}")

    def _emit_all(self, module: Module, names: list[str], parts: list[str], via: str) -> None:
        for used in names:
            if used in module.defs:
                self._emit(module.name, used, parts, via)
            elif used in module.imports:
                self._follow(module, used, parts, via)

    def _follow(self, module: Module, name: str, parts: list[str], via: str) -> None:
        target, attr, statement = module.imports[name]
        if target.split(".")[0] not in self.project:
            self.imports.setdefault(statement, None)
            return
        if attr is None or inspect.ismodule(getattr(importlib.import_module(target), attr, None)):
            raise SourceError(f"{via} uses {name!r}, a project module: a standalone notebook has no such "
                              f"module; import the names it needs from {target} directly")
        if attr != name:
            raise SourceError(f"{via} imports {attr} as {name}: the notebook defines it under its own name")
        self._emit(target, attr, parts, via)

    def import_cell(self) -> str:
        """The imports the cells need: ``import x`` lines, then one ``from x import a, b`` per module."""
        plain = sorted(s for s in self.imports if s.startswith("import "))
        names: dict[str, list[str]] = {}
        for statement in self.imports:
            if statement.startswith("from "):
                module, _, name = statement[len("from "):].partition(" import ")
                names.setdefault(module, []).append(name)
        grouped = [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(names.items())]
        return "\n".join(plain + grouped)

