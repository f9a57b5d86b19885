"""deploy/k8s/: schema-valid (strict, KEDA's CRDs included) and true to the code it deploys.

No cluster runs here: the objects are validated with kubernetes-validate's bundled schemas and
the vendored KEDA CRDs (tests/deploy_files.py), and every fact a manifest shares with the code
(variable names and values, probe paths, commands, shutdown timeouts, stream names, the write
budget) is checked against the code itself.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from typing import Any

import jsonschema
import pytest
from starlette.routing import Route

from engine.adapters import streams
from engine.app import create_app
from engine.runtime.cli import API_DRAIN_SECONDS, build_parser
from engine.runtime.supervisor import STOP_TIMEOUT_SECONDS
from engine.settings import load
from tests import deploy_files
from tests.deploy_files import K8S_VERSIONS, k8s_documents, k8s_object, validate_k8s

ROOT = deploy_files.ROOT
SECRET_VARIABLES = {"EXAMREG_DATABASE_URL", "EXAMREG_REDIS_URL", "EXAMREG_SECRET_KEY"}
# What a primary keeps for itself and the operators out of max_connections (docs/deploy.md).
POSTGRES_MAX_CONNECTIONS = 200
POSTGRES_RESERVED_CONNECTIONS = 20


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]  # type: ignore[no-any-return]


def _config() -> dict[str, str]:
    return k8s_object("ConfigMap", "examreg-config")["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("path", "doc"),
    k8s_documents(),
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in k8s_documents()],
)
def test_every_object_is_valid_in_strict_mode(path: Any, doc: dict[str, Any], version: str) -> None:
    validate_k8s(doc, version)


def test_the_directory_holds_every_kind_the_deployment_needs() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in k8s_documents()}
    assert {
        ("Deployment", "examreg-api"),
        ("HorizontalPodAutoscaler", "examreg-api"),
        ("PodDisruptionBudget", "examreg-api"),
        ("Deployment", "examreg-writer"),
        ("ScaledObject", "examreg-writer"),
        ("TriggerAuthentication", "examreg-valkey"),
        ("PodDisruptionBudget", "examreg-writer"),
        ("Job", "examreg-migrate"),
    } <= kinds
    for _, doc in k8s_documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "examreg", doc["metadata"]["name"]


# -- the validators can fail -------------------------------------------------------------------


def _broken(kind: str, name: str, change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(k8s_object(kind, name))
    change(doc)
    return doc


BROKEN = {
    "unknown field under strict (a probe's `pathh`)": _broken(
        "Deployment",
        "examreg-api",
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(pathh="/healthz"),
    ),
    "misplaced field (`replicas` on a container)": _broken(
        "Deployment", "examreg-writer", lambda d: _container(d).update(replicas=2)
    ),
    "wrong type (maxReplicas as a string)": _broken(
        "HorizontalPodAutoscaler", "examreg-api", lambda d: d["spec"].update(maxReplicas="8")
    ),
    "wrong type (a PDB selector as a list)": _broken(
        "PodDisruptionBudget", "examreg-writer", lambda d: d["spec"].update(selector=[])
    ),
    "KEDA: HPA's field name on a ScaledObject (`maxReplicas`)": _broken(
        "ScaledObject", "examreg-writer", lambda d: d["spec"].update(maxReplicas=4)
    ),
    "KEDA: trigger metadata is strings only (lagCount: 5000)": _broken(
        "ScaledObject",
        "examreg-writer",
        lambda d: d["spec"]["triggers"][0]["metadata"].update(lagCount=5000),
    ),
    "KEDA: wrong type (minReplicaCount as a string)": _broken(
        "ScaledObject", "examreg-writer", lambda d: d["spec"].update(minReplicaCount="2")
    ),
    "KEDA: misspelt scaler metadata (`lagcount`)": _broken(
        "ScaledObject",
        "examreg-writer",
        lambda d: d["spec"]["triggers"][0]["metadata"].update(lagcount="5000"),
    ),
    "KEDA: unknown field in ObjectMeta": _broken(
        "TriggerAuthentication", "examreg-valkey", lambda d: d["metadata"].update(label={})
    ),
    "KEDA: unknown field in a secretTargetRef": _broken(
        "TriggerAuthentication",
        "examreg-valkey",
        lambda d: d["spec"]["secretTargetRef"][0].update(value="hunter2"),
    ),
}


# What each rejection must say: the broken field itself, not some other complaint.
REASONS = dict(
    zip(
        BROKEN,
        (
            "'pathh' was unexpected",
            "'replicas' was unexpected",
            "'8' is not of type 'integer'",
            "[] is not of type 'object'",
            "'maxReplicas' was unexpected",
            "5000 is not of type 'string'",
            "'2' is not of type 'integer'",
            "unknown metadata ['lagcount']",
            "'label' was unexpected",
            "'value' was unexpected",
        ),
        strict=True,
    )
)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_manifest_is_rejected(case: str, version: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate_k8s(BROKEN[case], version)
    assert REASONS[case] in caught.value.message, case


# -- facts shared with the code ----------------------------------------------------------------


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def test_every_variable_is_one_settings_reads_and_the_values_load() -> None:
    known = deploy_files.settings_names()
    used = set(_config())
    for _, doc in k8s_documents():
        for node in deploy_files.walk(doc):
            if isinstance(node, dict) and "containers" in node:
                for container in node["containers"]:
                    used |= _env_names(container)
    unknown = {name for name in used if name not in known}
    assert not unknown, f"not read by engine/settings.py: {sorted(unknown)}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    undocumented = {name for name in used if f"`{name}`" not in readme}
    assert not undocumented, f"missing from the README's configuration table: {undocumented}"
    # The values are what settings accept (ranges, formats), with placeholder URLs.
    load({**_config(), "EXAMREG_DATABASE_URL": "postgresql://x", "EXAMREG_REDIS_URL": "redis://x"})


def test_secrets_come_from_secret_refs_never_literals() -> None:
    assert not [d for _, d in k8s_documents() if d["kind"] == "Secret"], "no Secret in Git"
    config = _config()
    assert not SECRET_VARIABLES & set(config)
    for value in config.values():
        assert "://" not in value and "password" not in value.lower(), value
    for _, doc in k8s_documents():
        for node in deploy_files.walk(doc):
            if not (isinstance(node, dict) and "containers" in node):
                continue
            for container in node["containers"]:
                for env in container.get("env", []):
                    if env["name"] in SECRET_VARIABLES:
                        assert "value" not in env, env["name"]
                        assert env["valueFrom"]["secretKeyRef"]["name"] == "examreg-secrets"
                if container["name"] in ("api", "writer"):
                    assert _env_names(container) >= SECRET_VARIABLES, container["name"]
    auth = k8s_object("TriggerAuthentication", "examreg-valkey")
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["password"]


def test_probes_use_the_apps_health_routes() -> None:
    api = _container(k8s_object("Deployment", "examreg-api"))
    app = create_app(load({}))
    get_routes = {r.path for r in app.routes if isinstance(r, Route) and "GET" in (r.methods or ())}
    probes = {k: api[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"  # Redis and PostgreSQL reachable
    assert probes["livenessProbe"]["path"] == "/healthz"  # the process answers
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    for probe in probes.values():
        assert probe["path"] in get_routes, probe
        assert probe["port"] in ports, probe
    args = build_parser().parse_args(api["command"][3:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", ports["http"])


def test_the_commands_are_examreg_commands() -> None:
    for kind, name, command in (
        ("Deployment", "examreg-api", "serve"),
        ("Deployment", "examreg-writer", "writer"),
        ("Job", "examreg-migrate", "migrate"),
    ):
        argv = _container(k8s_object(kind, name))["command"]
        assert argv[:3] == ["python", "-m", "engine"], name
        assert build_parser().parse_args(argv[3:]).command == command
    writer = _args("examreg-writer")
    assert writer.processes == 1, "one process per pod: KEDA counts pods, the budget counts writers"


def _args(deployment: str) -> Any:
    """The CLI's parse of a Deployment's command (after `python -m engine`)."""
    return build_parser().parse_args(
        _container(k8s_object("Deployment", deployment))["command"][3:]
    )


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    hook = container.get("lifecycle", {}).get("preStop")
    if hook is None:
        return 0.0
    command = hook["exec"]["command"]
    assert command[0] == "sleep", command
    return float(command[1])


def test_grace_periods_outlast_the_supervisors_stop() -> None:
    # Inside a pod: uvicorn's drain and the writer's shutdown end before the supervisor kills.
    writer_shutdown = load(_config()).writer_shutdown_seconds
    assert API_DRAIN_SECONDS < STOP_TIMEOUT_SECONDS
    assert writer_shutdown < STOP_TIMEOUT_SECONDS
    for name in ("examreg-api", "examreg-writer"):
        pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
        needed = _pre_stop_seconds(pod["containers"][0]) + STOP_TIMEOUT_SECONDS
        assert pod["terminationGracePeriodSeconds"] >= needed, (name, needed)
    api = _container(k8s_object("Deployment", "examreg-api"))
    assert _pre_stop_seconds(api) > 0, "the endpoints must drop the pod before it stops"


def test_selectors_match_the_pods_and_disruption_leaves_one_running() -> None:
    for name in ("examreg-api", "examreg-writer"):
        deployment = k8s_object("Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the count"
        pdb = k8s_object("PodDisruptionBudget", name)["spec"]
        assert pdb["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["maxUnavailable"] == 1
    hpa = k8s_object("HorizontalPodAutoscaler", "examreg-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "examreg-api",
    }
    assert hpa["minReplicas"] > 1 and hpa["metrics"][0]["resource"]["name"] == "cpu"
    scaled = k8s_object("ScaledObject", "examreg-writer")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "examreg-writer"
    assert scaled["minReplicaCount"] > 1


def test_one_lag_trigger_per_shard_stream_of_the_writers_group() -> None:
    shards = load(_config()).stream_shards
    triggers = k8s_object("ScaledObject", "examreg-writer")["spec"]["triggers"]
    assert [t["metadata"]["stream"] for t in triggers] == [
        streams.stream_key(s) for s in range(shards)
    ]
    for trigger in triggers:
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["consumerGroup"] == streams.GROUP
        assert int(trigger["metadata"]["lagCount"]) > 0
        assert trigger["authenticationRef"]["name"] == "examreg-valkey"


def test_max_writers_is_the_write_budget_arithmetic() -> None:
    """maxReplicaCount = floor(primary cores x writers' share / PostgreSQL cores per writer)."""
    scaled = k8s_object("ScaledObject", "examreg-writer")
    notes = scaled["metadata"]["annotations"]
    drain = int(notes["examreg.vn/writer-drain-rows-per-second"])
    # The figure is the one docs/capacity.md measured (≈ 57k rows/s for one writer).
    capacity = (ROOT / "docs" / "capacity.md").read_text(encoding="utf-8")
    measured = re.search(r"≈ (\d+)k rows/s", capacity)
    assert measured and drain == int(measured[1]) * 1000
    per_writer = float(notes["examreg.vn/postgres-cores-per-writer"])
    # Measured on the 2-core reference machine: a writer cost PostgreSQL at most those 2 cores.
    assert per_writer >= 2
    cores = float(notes["examreg.vn/postgres-cores"])
    share = float(notes["examreg.vn/writer-share"])
    assert 0 < share <= 0.5
    assert scaled["spec"]["maxReplicaCount"] == math.floor(cores * share / per_writer)
    # The arithmetic holds only while one writer is one process on at most one core.
    writer = _container(k8s_object("Deployment", "examreg-writer"))
    assert writer["resources"]["limits"]["cpu"] in ("1", 1, "1000m")
    assert build_parser().parse_args(writer["command"][3:]).processes == 1


def test_postgres_connections_stay_within_the_primarys_budget() -> None:
    settings = load(_config())
    api = _args("examreg-api")
    hpa = k8s_object("HorizontalPodAutoscaler", "examreg-api")["spec"]
    scaled = k8s_object("ScaledObject", "examreg-writer")["spec"]
    api_connections = hpa["maxReplicas"] * api.workers * settings.db_pool_size
    # A writer's pool: max(2, shards) (engine/runtime/writer.py, main).
    writer_connections = scaled["maxReplicaCount"] * max(2, settings.stream_shards)
    total = api_connections + writer_connections
    assert total <= POSTGRES_MAX_CONNECTIONS - POSTGRES_RESERVED_CONNECTIONS, total


def test_the_vendored_schemas_are_the_ones_their_provenance_names() -> None:
    table = (deploy_files.SCHEMAS / "README.md").read_text(encoding="utf-8")
    vendored = sorted(p for p in deploy_files.SCHEMAS.rglob("*") if p.suffix in (".yaml", ".json"))
    assert len(vendored) == 3
    for path in vendored:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        relative = path.relative_to(deploy_files.SCHEMAS).as_posix()
        assert re.search(rf"`{re.escape(relative)}` .*`{digest}`", table), relative


def test_the_writable_directories_exist_before_the_process_starts() -> None:
    """The root filesystem is read-only, and prometheus-client opens its files in
    PROMETHEUS_MULTIPROC_DIR at import: that directory must be a mount, not made later."""
    data_dir = _config()["EXAMREG_DATA_DIR"]
    for kind, name in (
        ("Deployment", "examreg-api"),
        ("Deployment", "examreg-writer"),
        ("Job", "examreg-migrate"),
    ):
        pod = k8s_object(kind, name)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {data_dir, deploy_files.image_metrics_dir()} <= mounts, (name, mounts)
        volumes = {v["name"] for v in pod["volumes"]}
        assert {m["name"] for m in container["volumeMounts"]} <= volumes, name


def test_both_pods_are_scraped_on_the_port_that_serves_their_metrics() -> None:
    for name, port_name in (("examreg-api", "http"), ("examreg-writer", "metrics")):
        template = k8s_object("Deployment", name)["spec"]["template"]
        notes = template["metadata"]["annotations"]
        container = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
        assert int(notes["prometheus.io/port"]) == ports[port_name], name
    writer = _container(k8s_object("Deployment", "examreg-writer"))
    env = {e["name"]: e.get("value") for e in writer["env"]}
    served = load({**_config(), **{k: v for k, v in env.items() if v is not None}})
    assert (
        served.writer_metrics_port
        == {p["name"]: p["containerPort"] for p in writer["ports"]}["metrics"]
    )
