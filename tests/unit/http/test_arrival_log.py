"""The API's opt-in arrival log (EXAMREG_ARRIVAL_LOG): what it writes and where."""

from __future__ import annotations

import os
from pathlib import Path

from engine.http.gate import ArrivalLog
from engine.settings import load
from loadtest.profiles import Arrival, parse_arrivals


def test_the_setting_is_off_by_default_and_a_path_when_set(tmp_path: Path) -> None:
    assert load(env={}).arrival_log is None
    settings = load(env={"EXAMREG_ARRIVAL_LOG": str(tmp_path / "arrivals.log")})
    assert settings.arrival_log == tmp_path / "arrivals.log"


def test_one_line_per_request_in_a_per_process_file_that_replay_reads(tmp_path: Path) -> None:
    log = ArrivalLog(tmp_path / "arrivals.log")
    log.append("PUT", "/api/v1/me/registration", 202)
    log.append("GET", "/api/v1/me/receipts/{receipt_id}", 404)
    log.close()
    path = tmp_path / f"arrivals.log.{os.getpid()}"
    parsed = list(parse_arrivals(path.read_text().splitlines(keepends=True)))
    assert [(a.method, a.route, a.status) for a in parsed] == [
        ("PUT", "/api/v1/me/registration", 202),
        ("GET", "/api/v1/me/receipts/{receipt_id}", 404),
    ]
    assert all(isinstance(a, Arrival) and a.at > 1e9 for a in parsed)


def test_nothing_is_opened_before_the_first_request_and_close_is_idempotent(
    tmp_path: Path,
) -> None:
    log = ArrivalLog(tmp_path / "arrivals.log")
    log.close()
    assert list(tmp_path.iterdir()) == []
    log.append("GET", "/healthz", 200)
    log.close()
    log.close()
    assert len(list(tmp_path.iterdir())) == 1
