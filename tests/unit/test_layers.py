"""The layering rule of docs/architecture.md holds, and its check can fail.

`make check` runs `lint-imports` with the contracts in pyproject.toml. These tests run the same
contracts on a copy of `engine/` and show that one deliberately wrong import breaks each of them,
so a green check means something; and that the module graph has no import circle at all, inside
a layer too (the layers contract alone allows siblings to import each other).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _append_import(project: Path, module: str, line: str) -> None:
    path = project / Path(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}  # deliberately wrong\n")


def test_the_shipped_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The domain reaching up into the process layer: against the layers.
        ("engine.domain.registration", "import engine.runtime.cli", "One way down"),
        # A service reading a request: against the layers (http is above services).
        ("engine.services.candidates", "import engine.http.plumbing", "One way down"),
        # A leaf importing a layer.
        ("engine.errors", "import engine.domain.reference", "One way down"),
        # A page talking to Redis itself instead of through the adapters.
        ("engine.pages.candidate", "import redis", "Only engine.adapters imports"),
        # A service that sees Starlette.
        ("engine.services.staff", "import starlette.requests", "never see a request"),
    ],
)
def test_a_wrong_import_breaks_the_check(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    project = _copy(tmp_path)
    _append_import(project, module, line)
    result = _lint(project)
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def _circles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every direct import `a → b` for which `b` also reaches `a`: the edges of a circle."""
    return sorted(
        (module, other)
        for module in graph.modules
        for other in graph.find_modules_directly_imported_by(module)
        if module != other
        and graph.find_shortest_chain(importer=other, imported=module) is not None
    )


def test_the_module_graph_has_no_import_circle() -> None:
    assert _circles(grimp.build_graph("engine", cache_dir=None)) == []


def test_a_circle_inside_a_layer_is_found() -> None:
    graph = grimp.build_graph("engine", cache_dir=None)
    # streams records metrics; metrics naming streams back would close a circle within adapters.
    graph.add_import(importer="engine.adapters.metrics", imported="engine.adapters.streams")
    assert ("engine.adapters.metrics", "engine.adapters.streams") in _circles(graph)
