"""deploy/compose/: valid against the Compose Specification and true to the code and dashboards.

No container engine runs here: the file is interpolated the way Compose does (`${VAR:?…}`,
`${VAR:-…}`) and validated with the specification's own JSON schema (deploy/schemas/compose/);
the facts it shares with the code (variables, commands, shutdown timeouts) and with dashboards/
(Prometheus rules, Grafana provisioning) are checked against those files.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from engine.runtime.cli import build_parser
from engine.runtime.supervisor import STOP_TIMEOUT_SECONDS
from engine.settings import load
from tests import deploy_files
from tests.deploy_files import compose_document, compose_variables, validate_compose
from tests.prometheus_bin import run_promtool

ROOT = deploy_files.ROOT
DASHBOARDS = ROOT / "dashboards"
SECRETS = {"EXAMREG_DB_PASSWORD", "VALKEY_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
ENV = {name: f"test-{name.lower()}" for name in SECRETS}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_document(ENV)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"write durations as seconds: {duration!r}"
    return float(match[1])


def test_the_compose_file_is_valid(compose: dict[str, Any]) -> None:
    validate_compose(compose)
    assert {"postgres", "valkey", "migrate", "api", "writer", "prometheus", "grafana"} <= set(
        compose["services"]
    )


@pytest.mark.parametrize(
    ("case", "change", "reason"),
    [
        (
            "unknown field (`stop_grace_periode`)",
            lambda c: c["services"]["api"].update(stop_grace_periode="20s"),
            "'stop_grace_periode' does not match any of the regexes",
        ),
        (
            "wrong type (`depends_on` as a number)",
            lambda c: c["services"]["writer"].update(depends_on=3),
            "3 is not valid under any of the given schemas",
        ),
        (
            "wrong type (a healthcheck's `disable` as a list)",
            lambda c: c["services"]["writer"]["healthcheck"].update(disable=["yes"]),
            "is not of type 'boolean', 'string'",
        ),
        (
            "wrong type (`stop_grace_period` as a number)",
            lambda c: c["services"]["api"].update(stop_grace_period=20),
            "20 is not of type 'string'",
        ),
        (
            "unknown top-level key (`service`)",
            lambda c: c.update(service={}),
            "'service' does not match any of the regexes",
        ),
    ],
)
def test_a_broken_compose_file_is_rejected(
    compose: dict[str, Any], case: str, change: Any, reason: str
) -> None:
    broken = copy.deepcopy(compose)
    change(broken)
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate_compose(broken)
    assert reason in caught.value.message, case


def test_every_secret_is_required_from_the_environment() -> None:
    """`:?` makes Compose stop when a password is unset; none is written in the file."""
    text = deploy_files.COMPOSE.read_text(encoding="utf-8")
    for name in SECRETS:
        assert re.search(rf"\$\{{{name}:\?", text), name
        with pytest.raises(KeyError, match=name):
            compose_document({k: v for k, v in ENV.items() if k != name})
    assert compose_variables() >= SECRETS


def test_examreg_variables_are_settings_and_load(compose: dict[str, Any]) -> None:
    known = deploy_files.settings_names()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("migrate", "api", "writer"):
        env = compose["services"][name]["environment"]
        examreg = {k: str(v) for k, v in env.items() if k.startswith("EXAMREG_")}
        assert set(examreg) <= known, sorted(set(examreg) - known)
        assert all(f"`{k}`" in readme for k in examreg), name
        settings = load(examreg)
        assert settings.database_url and settings.database_url.endswith("@postgres:5432/examreg")
        assert settings.redis_url and "@valkey:6379/" in settings.redis_url


def test_commands_and_grace_periods_match_the_code(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, command in (("migrate", "migrate"), ("api", "serve"), ("writer", "writer")):
        argv = services[name]["command"]
        assert argv[:3] == ["python", "-m", "engine"], name
        assert build_parser().parse_args(argv[3:]).command == command
    writer_shutdown = load(services["writer"]["environment"]).writer_shutdown_seconds
    assert writer_shutdown < STOP_TIMEOUT_SECONDS
    for name in ("api", "writer"):
        assert _seconds(services[name]["stop_grace_period"]) >= STOP_TIMEOUT_SECONDS, name
    # The image's HEALTHCHECK polls :8000/healthz: right for the API, wrong for the others.
    assert "healthcheck" not in services["api"]
    assert services["writer"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}
    valkey = " ".join(services["valkey"]["command"])
    for durability in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
        assert durability in valkey  # EXAMREG_REDIS_CHECK_DURABILITY refuses anything less


def test_prometheus_keeps_the_reference_rules_and_labels(compose: dict[str, Any]) -> None:
    ours = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    reference = yaml.safe_load((DASHBOARDS / "prometheus" / "prometheus.yml").read_text())
    assert ours["global"] == reference["global"]
    assert ours["rule_files"] == reference["rule_files"]
    job = ours["scrape_configs"][0]
    assert job["job_name"] == reference["scrape_configs"][0]["job_name"]
    assert job["dns_sd_configs"][0]["names"] == ["api"] and job["dns_sd_configs"][0]["port"] == 8000
    writers = ours["scrape_configs"][1]
    assert writers["job_name"] == "examreg-writer"
    port = load(compose["services"]["writer"]["environment"]).writer_metrics_port
    assert writers["dns_sd_configs"][0] == {
        "names": ["writer"],
        "type": "A",
        "port": port,
        "refresh_interval": "30s",
    }
    assert port and not load(compose["services"]["api"]["environment"]).writer_metrics_port
    mounts = _mounts(compose["services"]["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
    for rule_file in ours["rule_files"]:
        source = mounts[f"/etc/prometheus/{rule_file}"]
        assert (deploy_files.COMPOSE.parent / source).resolve().is_file(), source


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path of a service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = source
    return mounts


def test_grafana_gets_the_provisioned_datasource_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    here = deploy_files.COMPOSE.parent
    provisioning = (here / mounts["/etc/grafana/provisioning"]).resolve()
    assert provisioning == DASHBOARDS / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "examreg.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert (here / mounts[dashboards_path]).resolve() == DASHBOARDS / "grafana" / "dashboards"
    assert list((DASHBOARDS / "grafana" / "dashboards").glob("*.json"))
    datasource = yaml.safe_load((provisioning / "datasources" / "examreg.yml").read_text())
    url = datasource["datasources"][0]["url"]
    host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url).groups()  # type: ignore[union-attr]
    assert host in compose["services"], f"{url}: no such service"
    assert f"127.0.0.1:{port}:{port}" in compose["services"][host]["ports"]


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    """The config as the container sees it: rules.yml mounted beside prometheus.yml."""
    shutil.copy(deploy_files.COMPOSE.parent / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(DASHBOARDS / "prometheus" / "rules.yml", tmp_path / "rules.yml")
    result = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_writable_directories_exist_before_the_process_starts(
    compose: dict[str, Any],
) -> None:
    for name in ("migrate", "api", "writer"):
        service = compose["services"][name]
        assert service["read_only"] is True
        mounts = {entry.split(":")[0] for entry in service["tmpfs"]}
        assert {"/tmp", deploy_files.image_metrics_dir()} <= mounts, name
