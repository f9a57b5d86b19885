"""wrk's text report read as numbers (benchmarks/wrk.py); output captured from wrk 4.1.0."""

from __future__ import annotations

import pytest

from benchmarks import wrk

HELLO = """Running 1s test @ http://127.0.0.1:18777/hello
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms    2.53ms  24.68ms   92.49%
    Req/Sec    13.25k     8.23k   25.62k    63.64%
  Latency Distribution
     50%  180.00us
     75%  762.00us
     90%    2.82ms
     99%   13.97ms
  14469 requests in 1.10s, 1.96MB read
Requests/sec:  13142.95
Transfer/sec:      1.78MB
"""

REFUSED = """Running 15s test @ http://127.0.0.1:18500
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    22.10ms   12.53ms   1.02s    92.49%
    Req/Sec     1.45k   171.44     2.01k    70.00%
  Latency Distribution
     50%   18.71ms
     75%   24.41ms
     90%   38.71ms
     99%    1.02s
  43500 requests in 15.00s, 9.62MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 1500
Requests/sec:   2900.00
Transfer/sec:    656.90KB
p50 18.71 ms, p99 1020.00 ms
"""


def test_a_clean_report_gives_the_rate_and_the_percentiles_in_ms() -> None:
    assert wrk.parse(HELLO) == {
        "requests": 14469,
        "seconds": 1.1,
        "requests_per_s": 13143.0,
        "non_2xx": 0,
        "ok_per_s": 13143.0,
        "socket_errors": 0,
        "p50_ms": 0.18,
        "p99_ms": 13.97,
    }


def test_refused_answers_and_socket_errors_are_counted_and_not_in_the_2xx_rate() -> None:
    parsed = wrk.parse(REFUSED)
    assert parsed["non_2xx"] == 1500
    assert parsed["ok_per_s"] == pytest.approx(2900 * 42000 / 43500, abs=0.1)
    assert parsed["socket_errors"] == 5
    assert parsed["p99_ms"] == 1020.0  # "1.02s"


def test_output_without_the_summary_line_is_refused() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        wrk.parse("unable to connect to 127.0.0.1:18500 Connection refused\n")
