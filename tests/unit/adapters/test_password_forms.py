"""What is hashed is the password's NFKC form; passwords hashed as typed before still verify."""

from __future__ import annotations

import asyncio
import dataclasses
import unicodedata

from engine.adapters.passwords import PasswordService, make_hasher
from engine.settings import load

# Cheap hashing for a unit test: below the start-up floor on purpose, so set past `load`'s check.
CHEAP = dataclasses.replace(
    load(env={}), argon2_memory_kib=1024, argon2_time_cost=1, login_concurrency=1
)
COMPOSED = "Trâu vàng gặm cỏ 2026"
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)  # what some Vietnamese keyboards send


def test_a_password_set_on_one_keyboard_verifies_from_another() -> None:
    async def run() -> tuple[bool, bool, bool]:
        service = PasswordService(CHEAP)
        try:
            stored = await service.hash(DECOMPOSED)
            return (
                await service.verify(stored, COMPOSED),
                await service.verify(stored, DECOMPOSED),
                await service.verify(stored, COMPOSED + "x"),
            )
        finally:
            service.close()

    assert DECOMPOSED != COMPOSED
    assert asyncio.run(run()) == (True, True, False)


def test_a_hash_of_the_password_as_typed_still_verifies() -> None:
    legacy = make_hasher(CHEAP).hash(DECOMPOSED)  # set before passwords were normalised

    async def run() -> tuple[bool, bool]:
        service = PasswordService(CHEAP)
        try:
            return await service.verify(legacy, DECOMPOSED), await service.verify(None, DECOMPOSED)
        finally:
            service.close()

    assert asyncio.run(run()) == (True, False)
