"""Arrival logs on the command line: make a synthetic one from a profile, or summarise real ones.

    python -m loadtest.arrival_log synth --load-profile window_opening --span 120 \\
        --journeys-per-second 3 --out loadtest/data/arrivals-window-opening.tsv
    python -m loadtest.arrival_log show /var/log/examreg/arrivals.log.*

The API writes real ones when `EXAMREG_ARRIVAL_LOG` is set (one file per process, `<path>.<pid>`);
`loadtest/locust_openloop.py --replay FILES --replay-factor F` sends them again, F times faster.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from loadtest.profiles import (
    LOG_HEADER,
    PROFILES,
    format_arrival,
    read_arrival_logs,
    route_mix,
    synthetic_log,
)


def synth(args: argparse.Namespace) -> int:
    arrivals = synthetic_log(
        PROFILES[args.load_profile],
        span=args.span,
        journeys_per_second=args.journeys_per_second,
        seed=args.seed,
    )
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(LOG_HEADER)
        handle.writelines(format_arrival(a) for a in arrivals)
    print(f"{len(arrivals)} arrivals over {args.span:.0f}s in {args.out}")
    return 0


def show(args: argparse.Namespace) -> int:
    arrivals = read_arrival_logs(Path(p) for p in args.files)
    if not arrivals:
        print("no arrivals", file=sys.stderr)
        return 1
    span = arrivals[-1].at - arrivals[0].at
    per_second = Counter(int(a.at) for a in arrivals)
    print(f"{len(arrivals)} arrivals over {span:.1f}s, peak {max(per_second.values())}/s")
    for route, count in sorted(route_mix(arrivals).items(), key=lambda item: -item[1]):
        print(f"{count:>9}  {route}")
    statuses = Counter(a.status for a in arrivals)
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("synth", help="a synthetic log from a load profile")
    make.add_argument("--load-profile", choices=sorted(PROFILES), default="window_opening")
    make.add_argument("--span", type=float, default=120.0, help="seconds of log time")
    make.add_argument("--journeys-per-second", type=float, default=3.0, help="at the peak")
    make.add_argument("--seed", type=int, default=1)
    make.add_argument("--out", required=True)
    make.set_defaults(func=synth)
    summary = sub.add_parser("show", help="summarise arrival logs")
    summary.add_argument("files", nargs="+")
    summary.set_defaults(func=show)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
