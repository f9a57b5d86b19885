"""The deployment files and their validators, for tests/unit/deploy/.

No container engine or cluster runs here, so the files are checked against the schemas their
tools use:

- Kubernetes objects: `kubernetes-validate` (PyPI), which bundles the JSON schemas generated from
  each Kubernetes release's OpenAPI, in strict mode (an unknown field is an error, as with
  `kubectl apply --validate=strict`);
- KEDA's ScaledObject and TriggerAuthentication: the CRDs vendored in deploy/schemas/keda/
  (provenance in deploy/schemas/README.md), their openAPIV3Schema made strict the way
  kubeconform's openapi2jsonschema does it (`additionalProperties: false` on every object that
  lists its properties and does not preserve unknown fields), plus `metadata` against
  Kubernetes' own ObjectMeta schema;
- the Compose file: the Compose Specification's JSON schema (deploy/schemas/compose/), after
  Compose's `${VAR}` interpolation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

from engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
SCHEMAS = DEPLOY / "schemas"

# The releases the manifests are written for: the oldest still supported upstream when this was
# written and the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.major_minor(kubernetes_validate.latest_version()))

KEDA_CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda" / "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS
    / "keda"
    / "keda.sh_triggerauthentications.yaml",
}

# Trigger metadata the redis-streams scaler reads (KEDA v2.20.2, pkg/scalers/redis_streams_scaler.go
# and redis_scaler.go, `order=triggerMetadata` or `resolvedEnv`): the CRD types `metadata` as
# any map of strings, so a misspelt key (`lagcount`) would pass the schema and be ignored.
REDIS_STREAMS_METADATA = frozenset(
    {
        "address",
        "addresses",
        "host",
        "hosts",
        "port",
        "ports",
        "username",
        "usernameFromEnv",
        "password",
        "passwordFromEnv",
        "sentinelUsername",
        "sentinelUsernameFromEnv",
        "sentinelPassword",
        "sentinelPasswordFromEnv",
        "sentinelMaster",
        "sentinelMasterFromEnv",
        "unsafeSsl",
        "enableTLS",
        "databaseIndex",
        "stream",
        "consumerGroup",
        "pendingEntriesCount",
        "streamLength",
        "lagCount",
        "activationLagCount",
    }
)


def settings_names() -> set[str]:
    """Every EXAMREG_* variable engine/settings.py reads: one per field, plus the window's."""
    source = (ROOT / "engine" / "settings.py").read_text(encoding="utf-8")
    names = {f"EXAMREG_{f.name.upper()}" for f in fields(Settings) if f.name != "window"}
    return names | set(re.findall(r"EXAMREG_[A-Z_]+[A-Z]", source))


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every object of deploy/k8s/, with its file."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path, doc))
    return docs


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects in deploy/k8s"
    return found[0]


def _strict(schema: Any) -> Any:
    """openAPIV3Schema → JSON schema that refuses unknown fields (kubeconform's --strict)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in out if k.startswith("x-kubernetes-")]:
        del out[key]
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def _crd_schema(path: Path, api_version: str, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind, path
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    assert served, f"{path.name} serves no {api_version}"
    schema = _strict(copy.deepcopy(served[0]["schema"]["openAPIV3Schema"]))
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    return schema


def _k8s_definitions(version: str) -> Resource[Any]:
    """Kubernetes' strict definitions of `version`, from kubernetes-validate's bundle."""
    contents = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )
    return Resource.from_contents(contents)


def validate_k8s(doc: Mapping[str, Any], version: str) -> None:
    """Raise `jsonschema.ValidationError` (or the validator's own error) if `doc` is invalid."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in KEDA_CRDS:
        schema = _crd_schema(KEDA_CRDS[key], *key)  # type: ignore[arg-type]
        definitions = _k8s_definitions(version)
        schema["properties"]["metadata"] = {
            "$ref": f"{definitions.id()}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        }
        registry: Registry[Any] = definitions @ Registry()
        jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)
        if doc["kind"] == "ScaledObject":
            _check_scaler_metadata(doc)
        return
    kubernetes_validate.validate(dict(doc), version, strict=True)


def _check_scaler_metadata(doc: Mapping[str, Any]) -> None:
    for trigger in doc["spec"]["triggers"]:
        if trigger["type"] != "redis-streams":
            continue
        unknown = set(trigger["metadata"]) - REDIS_STREAMS_METADATA
        if unknown:
            raise jsonschema.ValidationError(
                f"redis-streams trigger {trigger.get('name')}: unknown metadata {sorted(unknown)}"
            )


# -- Compose ------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` over every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":?", "?") and not current:
            raise KeyError(f"{name} is required: {arg}")
        if op in (":-", "-") and not current:
            return arg
        return current or ""

    return _VARIABLE.sub(one, value)


def compose_variables() -> set[str]:
    return {m["name"] for m in _VARIABLE.finditer(COMPOSE.read_text(encoding="utf-8"))}


def compose_document(env: Mapping[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return interpolate(raw, env)  # type: ignore[no-any-return]


def validate_compose(doc: Mapping[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose" / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(doc)


def walk(node: Any) -> Iterator[Any]:
    """Every dict and list inside `node`, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def image_metrics_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR as the Dockerfile's ENV sets it."""
    found = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", (ROOT / "Dockerfile").read_text())
    assert found, "the Dockerfile sets no PROMETHEUS_MULTIPROC_DIR"
    return found[1]
