"""Heavy imports only where the work needs them, and no import circle inside the package.

Reading a study YAML or a finished run (its front, a --pick, the report) never imports torch,
torch-pruning, onnx or onnxruntime (its quantizer included): each is checked in a fresh
interpreter, as the agent's own test does (tests/agent/test_agent_queue.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import autoprune

PACKAGE = Path(autoprune.__file__).parent
ROOT = PACKAGE.parent
HEAVY = ("torch", "torch_pruning", "onnx", "onnxruntime", "onnxruntime.quantization")


def _run_clean(code: str) -> str:
    """Run ``code`` in a fresh interpreter, then fail if it imported any of HEAVY; returns its stdout."""
    check = f"\nimport sys\nbad = [m for m in {HEAVY!r} if m in sys.modules]\nassert not bad, f'imported {{bad}}'\nprint('clean')\n"
    out = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("clean"), out.stdout + out.stderr
    return out.stdout


def test_loading_a_study_yaml_is_light():
    _run_clean(
        "from autoprune.config import load_study_config\n"
        "for name in ('quickstart', 'digits-lowbit', 'fashion-resnet'):\n"
        "    config = load_study_config(f'studies/{name}.yaml')\n"
        "    assert config.build.calibration in ('minmax', 'percentile'), config.build\n"
        "import autoprune\n"
        "assert autoprune.BuildSettings is type(config.build)\n"
    )


def test_reading_a_run_is_light(tiny_run, tmp_path):
    """The front, a pick, the report data and `autoprune report RUN_DIR`, on a real finished run."""
    out = _run_clean(
        "from autoprune.report.source import open_run\n"
        "from autoprune.study.outputs import front_records\n"
        "from autoprune.pick import select_trial\n"
        "from autoprune.report.data import build_report_data\n"
        "from autoprune.cli import main\n"
        f"run = open_run({str(tiny_run.out_dir)!r})\n"
        "front = front_records(run.study)\n"
        "picked = select_trial(run.study, pick='max accuracy')\n"
        "data = build_report_data(run)\n"
        "assert front and picked.feasible and data.trials, (front, picked, data.trials)\n"
        f"assert main(['report', {str(tiny_run.out_dir)!r}, '--out', {str(tmp_path / 'r.html')!r}]) == 0\n"
        "print('front', sorted(r.number for r in front))\n"
    )
    expected = sorted(p["number"] for p in tiny_run.front["points"])
    assert f"front {expected}" in out
    assert (tmp_path / "r.html").stat().st_size > 100_000  # the page, with plotly.js in it


def test_lazy_packages_still_give_their_names():
    """compress, study and report import on first use; what they export is what they did eagerly."""
    _run_clean(
        "import importlib, types\n"
        "import autoprune.compress, autoprune.study, autoprune.report\n"
        "for pkg in (autoprune.compress, autoprune.study, autoprune.report):\n"
        "    assert sorted(dir(pkg)) == sorted(pkg.__all__), pkg\n"
        "from autoprune.compress import BuildSettings\n"
        "from autoprune.study.records import records\n"
        "print('light names ok')\n"
    )
    import autoprune.compress
    import autoprune.compress.prune  # the submodule named like the function
    from autoprune.compress.entry import prune

    assert autoprune.compress.prune is prune  # still the function
    assert isinstance(autoprune.compress.build, types.ModuleType)  # the stages' module
    assert autoprune.study.run_study.__module__ == "autoprune.study.runner"
    assert autoprune.report.write_report.__module__ == "autoprune.report.write"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported: not in a function, not under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if getattr(test, "id", getattr(test, "attr", None)) != "TYPE_CHECKING":
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _module_level_imports(node.body)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of autoprune it imports at module level}``.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so an import also reaches
    the target's packages, except those the importer is inside of (already being imported).
    """
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    reached = ".".join(parts[:i])
                    if reached in modules and reached != name and not name.startswith(reached + "."):
                        edges.add(reached)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_relative_and_package_imports():
    graph = import_graph()
    assert "autoprune.metrics" in graph["autoprune.pick"]  # from .metrics import ...
    assert {"autoprune.study", "autoprune.study.outputs"} <= graph["autoprune.report.data"]  # from ..study.outputs: study/__init__ runs first
    assert "autoprune.profile" not in graph["autoprune.profile.local"]  # its own package is already importing


def test_no_import_circle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import circle: " + " -> ".join(cycle)
