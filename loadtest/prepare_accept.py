"""Log in candidates from a credentials CSV; write `<token>\\t<form>` lines for loadtest/accept.lua.

python -m loadtest.prepare_accept http://127.0.0.1:8000 logins.csv accept-data.tsv [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
from typing import Any

import httpx

from loadtest.payloads import build_form


async def _one(
    client: httpx.AsyncClient, row: dict[str, str], reference: dict[str, Any], rng: random.Random
) -> str:
    credentials = {"login": row["login"], "password": row["password"]}
    login = await client.post("/api/v1/auth/login", json=credentials)
    login.raise_for_status()
    token = login.json()["token"]
    profile = (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    return token + "\t" + json.dumps(build_form(profile, reference, rng), ensure_ascii=False)


async def prepare(base_url: str, rows: list[dict[str, str]]) -> list[str]:
    """Log every row in (16 at a time) and build its form."""
    rng = random.Random(1)
    lines: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        reference = (await client.get("/api/v1/reference")).json()
        for start in range(0, len(rows), 16):
            chunk = rows[start : start + 16]
            lines += await asyncio.gather(*(_one(client, r, reference, rng) for r in chunk))
            sys.stderr.write(f"\rlogged in {len(lines)}/{len(rows)}")
    sys.stderr.write("\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("credentials")
    parser.add_argument("out")
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    with open(args.credentials, newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit]
    lines = asyncio.run(prepare(args.base_url, rows))
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
