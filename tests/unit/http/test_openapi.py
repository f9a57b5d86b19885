"""Unit tests of `engine.http.openapi`: the document describes exactly the routes the app serves,
and it is internally consistent (every operation has responses, every `$ref` resolves)."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from starlette.routing import Mount, Route

from engine import settings
from engine.app import create_app
from engine.domain import registration
from engine.domain.registration import CandidateContext, Catalog, validate_registration
from engine.domain.rostergen import generate_roster, sample_form
from engine.errors import InvalidRegistration
from engine.http.openapi import document

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _served() -> dict[str, set[str]]:
    """Path template → methods, from the app itself (creating it connects to nothing)."""
    app = create_app(settings.load(env={}))
    served: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/static":
            continue  # the web pages' CSS and JS, not API
        assert isinstance(route, Route), f"{route!r}: teach this test about mounts"
        if not route.include_in_schema:
            continue  # the candidate web pages (engine.pages.candidate): HTML, not API

        # Starlette adds HEAD to every GET route; a converter ({id:int}) is not part of OpenAPI.
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        served[path] |= {m.lower() for m in route.methods or ()} - {"head"}
    return dict(served)


def _described(doc: dict[str, Any]) -> dict[str, set[str]]:
    return {path: set(item) & HTTP_METHODS for path, item in doc["paths"].items()}


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in set(item) & HTTP_METHODS:
            yield path, method, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only local references are expected"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def test_it_is_openapi_3(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]


def test_every_served_route_is_described_with_the_same_methods(doc: dict[str, Any]) -> None:
    served, described = _served(), _described(doc)
    missing = {p: sorted(m) for p, m in served.items() if p not in described}
    assert not missing, f"routes without a description in engine/openapi.py: {missing}"
    differing = {
        p: {"served": sorted(m), "described": sorted(described[p])}
        for p, m in served.items()
        if described[p] != m
    }
    assert not differing


def test_every_described_path_is_served(doc: dict[str, Any]) -> None:
    served = _served()
    assert sorted(set(_described(doc)) - set(served)) == []


def test_the_document_describes_the_api_not_nothing(doc: dict[str, Any]) -> None:
    # The comparison above is vacuous if both sides are empty.
    assert {"/healthz", "/openapi.json", "/api/v1/me/registration"} <= set(doc["paths"])
    assert _described(doc)["/api/v1/me/registration"] == {"get", "put"}


def test_every_operation_has_responses_with_descriptions(doc: dict[str, Any]) -> None:
    for path, method, operation in _operations(doc):
        responses = operation.get("responses")
        assert responses, f"{method.upper()} {path} has no responses"
        for status, response in responses.items():
            assert re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", status), (path, method, status)
            if "$ref" in response:
                response = _resolve(doc, response["$ref"])
            assert response.get("description"), f"{method.upper()} {path} {status}"


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = list(_refs(doc))
    assert refs, "the error responses are shared through $ref"
    for ref in refs:
        _resolve(doc, ref)


def test_path_parameters_are_declared(doc: dict[str, Any]) -> None:
    for path, method, operation in _operations(doc):
        templated = set(re.findall(r"\{(\w+)\}", path))
        parameters = operation.get("parameters", []) + doc["paths"][path].get("parameters", [])
        declared = {p["name"] for p in parameters if p.get("in") == "path"}
        assert declared == templated, f"{method.upper()} {path}"
        assert all(p.get("required") for p in parameters if p.get("in") == "path")


def test_security_requirements_name_defined_schemes(doc: dict[str, Any]) -> None:
    schemes = set(doc["components"]["securitySchemes"])
    for path, method, operation in _operations(doc):
        for requirement in operation.get("security", []):
            assert set(requirement) <= schemes, f"{method.upper()} {path}: {requirement}"


# -- the registration form's schema against the validator itself ------------------------------
# The OpenAPI schema restates the form's shape for clients; these tests hold it to the validator's
# own constants and behaviour, so the two cannot drift apart (the validator is the one source).


def _form_schema(doc: dict[str, Any]) -> dict[str, Any]:
    put = doc["paths"]["/api/v1/me/registration"]["put"]
    schema: dict[str, Any] = put["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = _resolve(doc, schema["$ref"])
    return schema


def test_the_form_schema_names_exactly_the_validators_fields(doc: dict[str, Any]) -> None:
    form = _form_schema(doc)
    assert list(form["properties"]) == list(registration.FIELDS)
    assert form["additionalProperties"] is False
    props = form["properties"]
    assert list(props["residence"]["properties"]) == list(registration._RESIDENCE_FIELDS)
    assert list(props["schools"]["items"]["properties"]) == list(registration._SCHOOL_FIELDS)
    assert list(props["exemptions"]["properties"]) == list(registration._EXEMPTION_FIELDS)


def test_the_form_schema_enumerates_the_validators_values(doc: dict[str, Any]) -> None:
    props = _form_schema(doc)["properties"]
    assert props["sex"]["enum"] == list(registration._SEXES)
    assert props["candidate_type"]["enum"] == list(registration._CANDIDATE_TYPES)
    assert props["purposes"]["items"]["enum"] == list(registration._PURPOSES)
    assert set(props["schools"]["items"]["properties"]["grade"]["enum"]) == set(
        registration._GRADES
    )
    assert props["schools"]["maxItems"] == len(registration._GRADES)


def test_the_form_schema_requires_what_the_validator_requires(doc: dict[str, Any]) -> None:
    """Dropping a field from a valid form is refused with `required` exactly for the fields the
    schema lists as required, whatever the candidate type (a field required for some types only,
    such as type a's schools, is not in the schema's list); the residence's members likewise."""
    rng = random.Random(7)
    catalog = Catalog.from_reference()
    schema = _form_schema(doc)
    refused_by_type: dict[str, set[str]] = {}
    form: dict[str, Any] = {}
    ctx = CandidateContext(national_id="", today=date(2026, 4, 1))
    for entry in generate_roster(400, seed=7):
        if entry.candidate_type in refused_by_type:
            continue
        form = sample_form(entry, rng)
        ctx = CandidateContext(national_id=entry.national_id, today=date(2026, 4, 1))
        validate_registration(form, ctx, catalog)  # the starting point is valid

        def required_when_missing(body: dict[str, Any], path: str) -> bool:
            try:
                validate_registration(body, ctx, catalog)  # noqa: B023 - called right here
            except InvalidRegistration as exc:
                return (path, "required") in {(e.field, e.code) for e in exc.errors}
            return False

        refused_by_type[entry.candidate_type] = {
            name
            for name in form
            if required_when_missing({k: v for k, v in form.items() if k != name}, name)
        }
    assert len(refused_by_type) >= 2, refused_by_type.keys()
    always = set.intersection(*refused_by_type.values())
    assert always == set(schema["required"])

    def required_when_missing(body: dict[str, Any], path: str) -> bool:
        try:
            validate_registration(body, ctx, catalog)
        except InvalidRegistration as exc:
            return (path, "required") in {(e.field, e.code) for e in exc.errors}
        return False

    residence = schema["properties"]["residence"]
    refused_residence = {
        name
        for name in form["residence"]
        if required_when_missing(
            {**form, "residence": {k: v for k, v in form["residence"].items() if k != name}},
            f"residence.{name}",
        )
    }
    assert refused_residence == set(residence["required"])


def test_the_new_fields_of_the_phieu_enumerate_the_validators_values(doc: dict[str, Any]) -> None:
    props = _form_schema(doc)["properties"]
    for name, values in (
        ("curriculum", registration._CURRICULA),
        ("study_track", registration._STUDY_TRACKS),
        ("graduation_priority", registration._GRADUATION_PRIORITIES),
        ("graduation_encouragement", registration._ENCOURAGEMENTS),
    ):
        assert props[name]["enum"] == [*values, None], name
    exemptions = props["exemptions"]["properties"]
    assert exemptions["foreign_language_basis"]["enum"] == [*registration._EXEMPTION_BASES, None]
    assert exemptions["all_papers_reason"]["enum"] == [*registration._ALL_PAPERS_REASONS, None]
    level = exemptions["literature_certificate_level"]
    assert (level["minimum"], level["maximum"]) == registration._LITERATURE_LEVELS
    reserved = props["reserved_scores"]["items"]["properties"]
    assert list(reserved) == list(registration._RESERVED_SCORE_FIELDS)
    assert list(props["registration_unit"]["properties"]) == list(registration._UNIT_FIELDS)
    assert props["photo_sha256"]["pattern"] == f"^{registration._SHA256.pattern}$"


def test_the_photo_upload_documents_every_refusal_code(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/api/v1/me/photo"]["post"]
    for code in (
        "photo_too_large",
        "photo_unsupported_type",
        "photo_not_an_image",
        "photo_too_small",
        "photo_landscape",
        "photo_bomb",
        "photo_letterboxed",
    ):
        assert code in operation["summary"], code
    assert {"201", "200", "413", "415", "422"} <= set(operation["responses"])
    assert set(operation["requestBody"]["content"]) == {"image/jpeg", "image/png"}
