"""The built wheel carries everything the service reads from disk.

Builds the wheel, pip-installs it (without its dependencies, which come from this test run's
venv) into a fresh virtual environment, and runs its `examreg demo` in a directory outside the
source tree: the candidate login page and the support console both answer, which needs the
templates of every folder, the static files, the SQL, the Lua and the migrations from the wheel.
"""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_demo import _free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("examreg-*.whl")
    return wheel


def _venv_with(wheel: Path, where: Path) -> Path:
    """A venv with the wheel pip-installed (its console script too); this run's site-packages
    supply the dependencies (a plain path in a .pth: the editable install's finder is not
    loaded), so nothing is downloaded."""
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    (Path(purelib) / "zz-dependencies.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if Path(p).is_dir()) + "\n"
    )
    return python


def test_the_wheel_ships_templates_static_sql_lua_and_migrations(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "engine/pages/templates/login.html",
        "engine/pages/templates/support/search.html",
        "engine/pages/static/app.css",
        "engine/adapters/sql/queries.sql",
        "engine/adapters/lua/examreg.lua",
        "engine/adapters/schema/0001_core.sql",
        "engine/py.typed",
    ):
        assert expected in names, expected


def test_an_installed_wheel_serves_the_candidate_pages_and_the_console(
    tmp_path: Path, server_dir: Path
) -> None:
    python = _venv_with(_build_wheel(tmp_path / "dist"), tmp_path / "venv")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    port = _free_port()
    log_path = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMREG_")}
    env.pop("PYTHONPATH", None)
    probe = subprocess.run(
        [str(python), "-c", "import engine; print(engine.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert str(tmp_path / "venv") in probe.stdout, "the wheel's engine, not the source tree's"
    argv = [str(python.with_name("examreg")), "demo", "--data-dir", str(server_dir / "demo")]
    argv += ["--port", str(port), "--candidates", "5", "--workers", "1"]
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            argv,
            cwd=elsewhere,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert demo.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "demo not ready in 120 s\n" + log_path.read_text()
            time.sleep(0.3)
        for path, marker in (("/login", 'id="f-login"'), ("/support/login", 'id="f-username"')):
            page = httpx.get(base + path, timeout=10)
            assert page.status_code == 200, (path, page.text[:500])
            assert marker in page.text, path
        css = httpx.get(f"{base}/static/app.css", timeout=10)
        assert css.status_code == 200 and css.text.strip()
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=10)
