"""The import rules of the rooms (DESIGN.md, "Imports flow one way"), read from the source.

Every module of ``engine``, ``geodata``, ``jobs`` and ``dashboard`` (pages included) is parsed
with :mod:`ast`; every import counts, at module level or inside a function, except the
``if TYPE_CHECKING:`` ones where a test says so. The rules:

- no upward import: ``geodata`` imports nothing of ours above it; ``engine`` may use
  ``geodata`` (CRS helpers, errors); ``jobs`` may use both; ``dashboard`` may use ``geodata``
  and the torch-free part of ``engine`` (model cards), never ``jobs``;
- the dashboard never loads the model stack (torch, torchvision, smp, timm) when it imports;
- the store settings (``geodata.settings``) are read only by ``jobs`` and ``dashboard``;
- no import circle between modules, except :data:`KNOWN_CIRCLES`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "geodata", "jobs", "dashboard")

#: What each package may import of ours.
MAY_IMPORT: dict[str, set[str]] = {
    "geodata": {"geodata"},
    "engine": {"engine", "geodata"},
    "jobs": {"jobs", "engine", "geodata"},
    "dashboard": {"dashboard", "geodata", "engine"},
}
#: Third-party packages of the model stack, which the dashboard process must not load.
MODEL_STACK = {"torch", "torchvision", "segmentation_models_pytorch", "timm"}
#: Modules that read settings from the environment: only jobs and dashboard import them.
SETTINGS_MODULES = {"geodata.settings", "jobs.settings"}

#: Modules of jobs and dashboard allowed to use the ORM classes directly (none: issue 17's
#: store boundary moved the pipeline, demo, Ray benchmark, outbox, escalation and overdue
#: checks onto functions of ``geodata.store`` taking a Session). Any other module doing so
#: fails :func:`test_jobs_and_the_dashboard_use_no_orm_class`, and so does a listed one once
#: it is clean.
ORM_USERS_LEFT: set[str] = set()

#: Import circles allowed to remain (none: issue 17 broke them with the tracking split, the
#: jobs/cli/ package and notifier construction in jobs.notify). Each would be a list of
#: modules, each importing the next and the last the first. Any circle not listed fails this
#: test, and so does a listed one once it is gone.
KNOWN_CIRCLES: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Import:
    source: str  #: the importing module
    target: str  #: the imported module of ours (a package's __init__ when a name of it)
    line: int
    module_level: bool  #: executed when ``source`` is imported (not in a def, not TYPE_CHECKING)
    type_only: bool = False  #: under ``if TYPE_CHECKING:`` (never executed)
    names: tuple[str, ...] = ()  #: the names a ``from ... import`` takes

    def where(self) -> str:
        return f"{MODULES[self.source].relative_to(ROOT)}:{self.line}"


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, module_level: bool, type_only: bool = False
          ) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every node below ``node``, with whether it runs at import of the module and whether it
    is under ``if TYPE_CHECKING:`` (never runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False, type_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, False, True
                yield from _walk(stmt, False, True)
            for stmt in child.orelse:
                yield stmt, module_level, type_only
                yield from _walk(stmt, module_level, type_only)
        else:
            yield child, module_level, type_only
            yield from _walk(child, module_level, type_only)


def _resolve(name: str) -> str:
    """The longest prefix of dotted ``name`` that is one of our modules."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> tuple[list[Import], set[str]]:
    """Imports of our modules by ``module``, and the top-level third-party names it imports
    at module level."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours, third_party = [], set()
    for node, module_level, type_only in _walk(tree, True):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                target = _resolve(name)
                if target and target != module:
                    taken = (name.rpartition(".")[2],) if isinstance(node, ast.ImportFrom) else ()
                    ours.append(Import(module, target, node.lineno, module_level, type_only,
                                       taken))
            elif module_level and top != "__future__":
                third_party.add(top)
    return ours, third_party


IMPORTS: dict[str, list[Import]] = {}
THIRD_PARTY: dict[str, set[str]] = {}
for _m in MODULES:
    IMPORTS[_m], THIRD_PARTY[_m] = _imports(_m)
EDGES: dict[str, set[str]] = {m: {i.target for i in IMPORTS[m]} for m in MODULES}


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module (the circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_is_read():
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert {"dashboard.pages.5_Models", "geodata.store.api", "jobs.pipeline",
            "engine.models"} <= set(MODULES)
    # function-level imports count: the CLI imports the engine inside its commands
    assert any(not i.module_level and i.target == "engine.registry"
               for i in IMPORTS["jobs.cli.models"])


def test_no_upward_import():
    upward = [f"{i.where()}: {i.source} imports {i.target}"
              for m in MODULES for i in IMPORTS[m]
              if i.target.split(".")[0] not in MAY_IMPORT[m.split(".")[0]]]
    assert not upward, ("imports against the one-way rule (DESIGN.md; tests/unit/"
                        "test_layers.py MAY_IMPORT):\n" + "\n".join(upward))


def _loaded_at_import(module: str) -> set[str]:
    """Our modules executed when ``module`` is imported: module-level imports, transitively,
    with the packages (``__init__``) of each."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts)) if ".".join(parts[:k])
                 in MODULES]
        todo += [i.target for i in IMPORTS[m] if i.module_level]
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dashboard")))
def test_the_dashboard_does_not_load_the_model_stack(module):
    loaded = _loaded_at_import(module)
    stack = {m: sorted(THIRD_PARTY[m] & MODEL_STACK) for m in sorted(loaded)
             if THIRD_PARTY[m] & MODEL_STACK}
    assert not stack, f"importing {module} loads the model stack through {stack}"


def test_only_jobs_and_the_dashboard_read_settings():
    readers = [f"{i.where()}: {i.source}" for m in MODULES for i in IMPORTS[m]
               if i.target in SETTINGS_MODULES and m.split(".")[0] not in ("jobs", "dashboard")
               and m not in SETTINGS_MODULES]
    assert not readers, ("engine and geodata take explicit arguments; these import settings:\n"
                         + "\n".join(readers))


ORM_MODULE = "geodata.store.models"  #: the tables (a package of them counts too)


def _orm_classes() -> set[str]:
    from geodata.store.models import Base

    return {mapper.class_.__name__ for mapper in Base.registry.mappers}


def test_jobs_and_the_dashboard_use_no_orm_class():
    """The store boundary (DESIGN.md; issue 17): above ``geodata``, the store is reached through
    functions of ``geodata.store`` taking a Session or an Engine, never through the ORM
    classes or the ``geodata.store.models`` module (``if TYPE_CHECKING:`` imports for type
    hints are allowed: they never run)."""
    classes = _orm_classes()
    assert {"Survey", "Alert", "Notification", "JobRun"} <= classes
    users: dict[str, list[str]] = {}
    for m in MODULES:
        if m.split(".")[0] not in ("jobs", "dashboard"):
            continue
        for i in IMPORTS[m]:
            orm = (i.target.startswith(ORM_MODULE)
                   or (i.target == "geodata.store" and set(i.names) & classes))
            if orm and not i.type_only:
                users.setdefault(m, []).append(i.where())
    new = {m: where for m, where in users.items() if m not in ORM_USERS_LEFT}
    assert not new, ("these modules use ORM classes; call (or add) a function of "
                     f"geodata.store taking a Session instead: {new}")
    clean = sorted(ORM_USERS_LEFT - set(users))
    assert not clean, ("these modules no longer use ORM classes; delete them from "
                       f"ORM_USERS_LEFT in tests/unit/test_layers.py: {clean}")


def test_no_import_circle_but_the_known_ones():
    known_edges = {(c[k], c[(k + 1) % len(c)]) for c in KNOWN_CIRCLES for k in range(len(c))}
    gone = [" -> ".join((*c, c[0])) for c in KNOWN_CIRCLES
            if any((c[k], c[(k + 1) % len(c)]) not in {(m, t) for m in EDGES for t in EDGES[m]}
                   for k in range(len(c)))]
    assert not gone, ("these known circles are broken now; delete them from KNOWN_CIRCLES in "
                      "tests/unit/test_layers.py:\n" + "\n".join(gone))
    # An import between two modules of one strongly connected component lies on a circle.
    new = sorted(f"{i.where()}: {i.source} imports {i.target}"
                 for component in _strongly_connected(EDGES) for m in sorted(component)
                 for i in IMPORTS[m]
                 if i.target in component and (m, i.target) not in known_edges)
    assert not new, ("import circles (each import below lies on one; move the shared code to "
                     "a module both can import, or split the module):\n" + "\n".join(new))


def test_the_circle_finder_finds_circles():
    """The checks above are only as good as the graph search: a made-up graph."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert _strongly_connected(edges) == [{"a", "b", "c"}]
    tree = ast.parse("from typing import TYPE_CHECKING\nimport x\nif TYPE_CHECKING:\n"
                     "    import y\ndef f():\n    import z\n")
    levels = {n.names[0].name: (level, type_only) for n, level, type_only in _walk(tree, True)
              if isinstance(n, ast.Import)}
    assert levels == {"x": (True, False), "y": (False, True), "z": (False, False)}


def test_photo_cracks_are_outlined_in_their_severity_colour(tmp_path):
    """Issue 28, item 7: photo cracks were drawn red whatever their severity."""
    import io

    import shapely
    from PIL import Image

    from dashboard.imagery import photo_with_cracks
    from dashboard.maps import SEVERITY_COLOURS

    path = tmp_path / "wall.png"
    Image.new("RGB", (100, 100), (128, 128, 128)).save(path)
    png = photo_with_cracks(path, [shapely.box(10, 10, 40, 40), shapely.box(60, 60, 90, 90)],
                            colours=[SEVERITY_COLOURS["slight"], SEVERITY_COLOURS["severe"]])
    im = Image.open(io.BytesIO(png)).convert("RGB")

    def hex_(xy):
        return "#{:02x}{:02x}{:02x}".format(*im.getpixel(xy))

    assert hex_((25, 10)) == SEVERITY_COLOURS["slight"]
    assert hex_((75, 60)) == SEVERITY_COLOURS["severe"]
