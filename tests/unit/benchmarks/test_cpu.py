"""CPU per request from /proc/<pid>/stat (benchmarks/cpu.py): parsing, trees, the division."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import cpu
from benchmarks.cpu import ProcStat, parse_stat, per_request_us, tree_ticks


def _line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0):
    # Fields 1-2, then state (3), ppid (4), fields 5-13, utime (14) … cstime (17), then the rest.
    middle = " ".join(["0"] * 9)
    tail = " ".join(["20", "0", "1", "0", "12345", "1000", "50"])
    return f"{pid} ({comm}) S {ppid} {middle} {utime} {stime} {cutime} {cstime} {tail}\n"


def test_parse_stat_reads_the_four_time_fields_after_the_command_name() -> None:
    stat = parse_stat(_line(4242, "postgres", 1, 150, 30, 7, 3))
    assert stat == ProcStat(pid=4242, ppid=1, utime=150, stime=30, cutime=7, cstime=3)
    assert stat.ticks == 190


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    # Valkey and PostgreSQL rename their processes; a comm may hold ") (" or spaces.
    stat = parse_stat(_line(77, "valkey-server *:6379) (x", 12, 40, 2))
    assert (stat.pid, stat.ppid, stat.utime, stat.stime) == (77, 12, 40, 2)


def test_a_real_stat_line_of_this_process_parses() -> None:
    stat = parse_stat(Path("/proc/self/stat").read_text())
    assert stat.ppid > 0 and stat.ticks >= 0


@pytest.mark.parametrize("text", ["", "garbage", "12 (short) S 1 2 3"])
def test_what_is_not_a_stat_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(text)


def _table(*stats: ProcStat) -> dict[int, ProcStat]:
    return {s.pid: s for s in stats}


def test_a_tree_sums_the_root_and_every_descendant_but_not_its_neighbours() -> None:
    table = _table(
        ProcStat(
            10,
            1,
            5,
            1,
            100,
            20,
        ),  # postmaster: 120 ticks of reaped backends
        ProcStat(11, 10, 30, 10, 0, 0),  # a backend
        ProcStat(12, 11, 2, 1, 0, 0),  # a grandchild
        ProcStat(20, 1, 999, 999, 0, 0),  # another server: not in the tree
    )
    assert tree_ticks(table, 10) == (5 + 1 + 100 + 20) + (30 + 10) + (2 + 1)
    assert tree_ticks(table, 11) == 43
    assert tree_ticks(table, 99) == 0  # a root that is gone


def test_a_child_that_exits_between_two_readings_is_still_counted_once() -> None:
    before = _table(ProcStat(10, 1, 5, 0, 0, 0), ProcStat(11, 10, 40, 10, 0, 0))
    # The backend used 10 more ticks, exited and was reaped: its 60 ticks move into cutime/cstime.
    after = _table(ProcStat(10, 1, 5, 0, 50, 10))
    assert tree_ticks(after, 10) - tree_ticks(before, 10) == 10


def test_cpu_per_request_is_in_microseconds_with_a_total_and_null_without_requests() -> None:
    seconds = {"api": 1.5, "valkey": 0.25, "postgres": 0.5, "writer": 0.25}
    assert per_request_us(seconds, 10_000) == {
        "api": 150.0,
        "valkey": 25.0,
        "postgres": 50.0,
        "writer": 25.0,
        "total": 250.0,
    }
    assert per_request_us(seconds, 0) == dict.fromkeys([*seconds, "total"])


def test_a_probe_measures_a_fake_proc_tree_between_start_and_stop(tmp_path: Path) -> None:
    def write(pid: int, ppid: int, utime: int) -> None:
        (tmp_path / str(pid)).mkdir(exist_ok=True)
        (tmp_path / str(pid) / "stat").write_text(_line(pid, "python", ppid, utime, 0))

    write(100, 1, 10)
    write(101, 100, 20)
    (tmp_path / "self").mkdir()  # not a pid: ignored
    probe = cpu.Probe({"api": 100}, proc=tmp_path)
    probe.start()
    write(101, 100, 20 + cpu.CLOCK_TICKS * 2)  # two seconds of CPU in the worker
    write(102, 100, cpu.CLOCK_TICKS)  # a worker started during the phase: one second
    assert probe.stop() == {"api": 3.0}
