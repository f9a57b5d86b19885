"""The open-loop driver's request bytes for each `--request` kind (loadtest/driver.py, pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.driver import Workload


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "driver.tsv"
    templates = {"a": '{"national_id": "%(nid)s", "full_name": "%(name)s"}'}
    path.write_text(
        "#templates\t" + json.dumps(templates) + "\n"
        "7\ttok7\t079208028316\tPHAN GIA HOÀNG\t2008-07-19\tmale\ta\t02\t005\n",
        encoding="utf-8",
    )
    return path


def _split(raw: bytes) -> tuple[list[str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), body


def test_registration_is_a_put_of_the_filled_form_with_a_fresh_key(data: Path) -> None:
    lines, body = _split(Workload(data, "/api/v1/me/registration", "h:1", "k-").request(3))
    assert lines[0] == "PUT /api/v1/me/registration HTTP/1.1"
    assert {"Authorization: Bearer tok7", "Idempotency-Key: k-3"} <= set(lines)
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"national_id": "079208028316", "full_name": "PHAN GIA HOÀNG"}


def test_me_is_a_get_with_the_candidates_token_and_no_body(data: Path) -> None:
    raw = Workload(data, "/api/v1/me", "h:1", "k-", "me").request(0)
    lines, body = _split(raw)
    assert lines == ["GET /api/v1/me HTTP/1.1", "Host: h:1", "Authorization: Bearer tok7"]
    assert body == b""


def test_login_posts_the_national_id_and_the_shared_password(data: Path) -> None:
    raw = Workload(data, "/api/v1/auth/login", "h:1", "k-", "login", "Load-test-2026").request(0)
    lines, body = _split(raw)
    assert lines[0] == "POST /api/v1/auth/login HTTP/1.1"
    assert not any(line.startswith("Authorization") for line in lines)
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"login": "079208028316", "password": "Load-test-2026"}
