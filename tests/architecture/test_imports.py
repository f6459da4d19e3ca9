"""The layers import only downwards, no module imports one that imports it back, and
importing a module starts nothing.

Layers, lowest first: the foundation (``pushcore.config``, ``errors``, ``fields``,
``endpoints``, ``logs``, ``cliargs``, the HTTP ``client``), ``transport``, then
``providers`` and ``db`` (side by side: neither imports the other), ``fanout``, ``api``;
``workers`` sit on ``fanout``; the simulators (``gateways``), the demo and the command line
are tools on top.  Imports inside functions count for circles (a lazy import that comes
back is still a circle) but not for layering: ``pushcore.api.app`` builds the Dramatiq
enqueuer lazily, and the command line imports each sub-command's handler lazily.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RANK = {
    "pushcore": 0,
    "pushcore.__init__": 0,
    "pushcore.config": 0,
    "pushcore.errors": 0,
    "pushcore.fields": 0,
    "pushcore.endpoints": 0,
    "pushcore.logs": 0,
    "pushcore.cliargs": 0,
    "pushcore.client": 0,
    "pushcore.transport": 1,
    "pushcore.providers": 2,
    "pushcore.db": 2,
    "pushcore.templates": 2.5,  # on providers (the notification type), under fanout
    "pushcore.fanout": 3,
    "pushcore.webhooks": 3,
    "pushcore.api": 4,
    "workers": 4,
    "pushcore.console": 5,
    "pushcore.gateways": 5,
    "pushcore.demo": 6,
    "pushcore.cli": 7,
    "pushcore.__main__": 8,
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("pushcore", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts ``a`` and ``a.b``
    when that is a module); imports under ``if TYPE_CHECKING:`` do not count."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            counted = top or not module_level_only
            if isinstance(child, ast.Import) and counted:
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and counted:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            in_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, top and not in_function)

    visit(ast.parse(path.read_text()), True)
    return {name for name in found if name in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer: add it to RANK")


def _edges(*, module_level_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        # a package importing its own submodules (routes/__init__ gathering the route
        # tables) is not an import back
        edges[module] = {
            target
            for target in _imports(path, module_level_only=module_level_only)
            if target != module and not target.startswith(module + ".")
        }
    return edges


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_layers_import_only_downwards() -> None:
    wrong = []
    for module, targets in _edges(module_level_only=True).items():
        mine = _layer(module)
        for target in targets:
            theirs = _layer(target)
            if theirs == mine:
                continue
            # the foundation's modules may use each other; any other layer only lower ones
            if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] != 0):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_transport_knows_nothing_of_providers_and_pushcore_nothing_of_workers() -> None:
    edges = _edges(module_level_only=True)
    assert [
        (m, t)
        for m, ts in edges.items()
        for t in ts
        if m.startswith("pushcore.transport")
        and not t.startswith(("pushcore.transport", "pushcore.errors", "pushcore.config"))
    ] == []
    assert [
        (m, t) for m, ts in edges.items() for t in ts
        if m.startswith("pushcore") and t.startswith("workers")
    ] == []  # fmt: skip


def test_no_import_circles() -> None:
    edges = _edges(module_level_only=False)
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    assert circles == []


def test_importing_every_module_starts_nothing(tmp_path: Path) -> None:
    """With a setting that would refuse to load, every module still imports: none reads the
    settings, builds a broker or opens a connection at import."""
    names = sorted(m for m in MODULES if not m.endswith("__main__"))
    script = (
        "import importlib, dramatiq.broker\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert dramatiq.broker.global_broker is None, 'a broker was built at import'\n"
        "print('imported all')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHCORE_")}
    env["PUSHCORE_BATCH_SIZE"] = "not-a-number"  # load_settings() would raise ConfigError
    env["PUSHCORE_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "imported all"
