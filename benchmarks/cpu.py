"""CPU time per request, per kind of process, from /proc/<pid>/stat: the benchmark's cost figure.

A kind (API workers, Valkey, PostgreSQL, writer) is a root process and all its descendants; its
CPU time is the sum over the live processes of the tree of utime + stime + cutime + cstime. The
children's fields (cutime, cstime) hold every descendant that has exited and been reaped (a
PostgreSQL backend, Valkey's rewrite child, a restarted worker), so a process that ends during a
measured phase is still counted, exactly once. A `Probe` takes that sum at the start and at the
end of a phase; the delta divided by the requests served is the figure. Parsing and the tree walk
are pure (`parse_stat`, `tree_ticks`); only `read_table` reads /proc.

Why CPU per request next to throughput: on a shared 2-core machine the rates move with the
neighbours' load, while the CPU a request costs each process barely does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the figure needs; times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def ticks(self) -> int:
        """This process's own CPU time and that of its reaped descendants."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name (field 2) is in parentheses and may itself
    contain spaces and parentheses, so the fields are counted from the last ')' (proc(5))."""
    head, _, rest = text.rpartition(")")
    if not head or "(" not in head:
        raise ValueError("not a /proc/<pid>/stat line")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()  # fields[0] is field 3 (state)
    if len(fields) < 15:
        raise ValueError("a /proc/<pid>/stat line with too few fields")
    ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
    return ProcStat(pid, ppid, utime, stime, cutime, cstime)


def read_table(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process now on the machine (those that vanish while read are left out)."""
    table: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # exited between the listing and the read
        table[stat.pid] = stat
    return table


def tree_ticks(table: Mapping[int, ProcStat], root: int) -> int:
    """CPU ticks of `root` and every live descendant (0 when the root is gone)."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0
    seen: set[int] = set()
    todo = [root] if root in table else []
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid].ticks
        todo += children.get(pid, [])
    return total


def per_request_us(seconds: Mapping[str, float], requests: int) -> dict[str, float | None]:
    """µs of CPU per request for each kind, and their total; None when nothing was served."""
    result: dict[str, float | None] = {}
    for kind, value in {**seconds, "total": sum(seconds.values())}.items():
        result[kind] = round(value * 1e6 / requests, 1) if requests > 0 else None
    return result


class Probe:
    """CPU seconds used by each kind's process tree between `start()` and `stop()`."""

    def __init__(self, roots: Mapping[str, int], proc: Path = Path("/proc")) -> None:
        self.roots = dict(roots)
        self.proc = proc
        self.before: dict[str, int] = {}

    def _ticks(self) -> dict[str, int]:
        table = read_table(self.proc)
        return {kind: tree_ticks(table, pid) for kind, pid in self.roots.items()}

    def start(self) -> None:
        self.before = self._ticks()

    def stop(self) -> dict[str, float]:
        after = self._ticks()
        return {
            kind: round(max(0, after[kind] - self.before.get(kind, 0)) / CLOCK_TICKS, 3)
            for kind in self.roots
        }
