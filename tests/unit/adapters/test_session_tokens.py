"""The candidate token's claim: what the submission's one round trip computes its keys from."""

from __future__ import annotations

import pytest

from engine.adapters.sessions import candidate_claim, candidate_session_key


@pytest.mark.parametrize(
    ("token", "claim"),
    [
        ("1234.Zm9vYmFyYmF6cXV4MTIzNA", 1234),
        ("0.abc", 0),
        ("123456789012.x", 123456789012),
    ],
)
def test_a_candidate_token_names_its_candidate(token: str, claim: int) -> None:
    assert candidate_claim(token) == claim


@pytest.mark.parametrize(
    "token",
    [
        "Zm9vYmFyYmF6cXV4MTIzNA",  # staff, or a candidate's from before the shard-tagged layout
        "1234.",  # no secret
        ".secret",  # no candidate
        "12a4.secret",
        "1234567890123.secret",  # longer than any candidate id
        "١٢٣.secret",  # digits, but not ASCII ones
        "-12.secret",
    ],
)
def test_anything_else_claims_no_one(token: str) -> None:
    assert candidate_claim(token) is None


def test_the_session_key_carries_the_shards_hash_tag() -> None:
    assert candidate_session_key(3, "ab" * 32) == f"examreg:{{3}}:session:{'ab' * 32}"
