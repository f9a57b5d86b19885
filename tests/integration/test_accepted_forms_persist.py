"""Every form the validator accepts becomes a row (promise 1; issue 12), proved with Hypothesis.

The strategies draw forms for roster candidates with hostile Unicode in the free-text fields —
combining marks, letters that grow when upper-cased (ß → SS, ﬃ → FFI), full-width letters,
right-to-left scripts and marks, emoji, unassigned and private-use code points where the rules
allow them, lengths at the limits, now and then a control character that the validator must
refuse — keep the ones the validator accepts, and send them through the real API (PUT, 202) into
the real streams; the real ShardWriter drains them into the real PostgreSQL, and each must be a
history row, equal to the canonical form, and the current row when it is its candidate's newest
version. A form that PostgreSQL refused would sit in a
dead-letter stream; the assertion names its reason.

Examples share one database and one Redis (the fixtures live for the whole test, hence the
suppressed function-scoped-fixture health check): each example submits new versions and checks
its own rows. `HYPOTHESIS_PROFILE=long` runs many more examples (tests/conftest.py).
"""

from __future__ import annotations

import sys
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.adapters import streams
from engine.domain import reference
from engine.domain.registration import CandidateContext, Catalog, validate_registration
from engine.domain.rostergen import generate_roster
from engine.errors import InvalidRegistration
from engine.settings import VIETNAM, Settings
from tests.conftest import Harness, make_harness
from tests.support import ROSTER_SEED, ROSTER_SIZE, drain, form_for

pytestmark = pytest.mark.anyio

CATALOG = Catalog.from_reference()
# The template database's roster (tests/support.py), known before any fixture runs: every draw
# happens before the test's coroutine starts, where Hypothesis may stop a draw at any point.
ROSTER = [asdict(entry) for entry in generate_roster(ROSTER_SIZE, seed=ROSTER_SEED)]

# Letters whose upper case is longer than they are, once NFC: the trap of issue 12.
GROWING = [
    c
    for c in map(chr, range(sys.maxunicode + 1))
    if unicodedata.category(c)[0] in "LM" and len(unicodedata.normalize("NFC", c.upper())) > 1
]
VIETNAMESE = "ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ"
COMBINING = [chr(c) for c in (0x300, 0x301, 0x303, 0x309, 0x323, 0x306, 0x302, 0x31B, 0x345)]
FULL_WIDTH = [chr(c) for c in [*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]]
RIGHT_TO_LEFT = list("אבגדהוזחטיךכלםמןנסעףפץצקרשת" + "ابتثجحخدذرزسشصضطظعغفقكلمنهوي")
SINGLETONS = ["\u212b", "\u2126", "\u212a", "İ", "ı", "ǅ", "ẞ", "ﬀ"]  # NFC or case maps change
FORMAT_MARKS = ["\u200e", "\u200f", "\u202b", "\u202e", "\u2067", "\u200d", "\ufeff", "\u00ad"]
EMOJI = ["😀", "🇻🇳", "👍🏿", "\U0001f9ff", "\u2764\ufe0f"]
ZWJ_EMOJI = ["👩\u200d👩\u200d👧", "🧑🏽\u200d🎓"]  # U+200D is a format character (Cf)


# Now and then a control character: accepted, it would be refused by PostgreSQL (NUL: 22P05).
_CONTROLS = st.sampled_from(["", "", "", "", "", "", "", "", "\x00", "\x1b", "\x7f", "\x85"])


def _letters() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(VIETNAMESE + VIETNAMESE.upper() + "abcdeghiklmnopqrstuvxy"),
        st.sampled_from(GROWING),
        st.sampled_from(COMBINING + FULL_WIDTH + RIGHT_TO_LEFT + SINGLETONS),
        st.characters(categories=("L", "M")),
    )


def _stored_name(raw: str) -> str:
    return unicodedata.normalize("NFC", " ".join(unicodedata.normalize("NFC", raw).split()).upper())


def _stored_text(raw: str) -> str:
    return " ".join(unicodedata.normalize("NFC", raw).split())


def _at_limit(raw: str, limit: int, stored: Callable[[str], str]) -> str:
    """The longest prefix of `raw` whose stored form has at most `limit` characters."""
    while len(stored(raw)) > limit:
        raw = raw[:-1]
    return raw


def _names() -> st.SearchStrategy[str]:
    """Names of letters and marks with spaces, apostrophes and hyphens; some past the limit, some
    exactly at it once upper-cased."""
    char = st.one_of(_letters(), _letters(), st.sampled_from(" '-"), st.sampled_from(["\t"]))
    return st.one_of(
        st.text(char, min_size=2, max_size=84),
        # At most 80 as typed, often more in capitals: the validator must measure what is stored.
        st.text(char, min_size=60, max_size=80),
        st.text(char, min_size=80, max_size=120).map(lambda s: _at_limit(s, 80, _stored_name)),
    )


def _addresses() -> st.SearchStrategy[str]:
    """Any printable code point (no category C) and emoji: what an address may hold; some
    exactly 200 characters long once spaces are collapsed."""
    char = st.one_of(
        st.characters(exclude_categories=("C",)),
        st.sampled_from(EMOJI + COMBINING + RIGHT_TO_LEFT + GROWING[:40]),
        st.just(" "),
    )
    half = st.lists(char, min_size=4, max_size=102).map("".join)  # an emoji may be several
    text = st.tuples(half, _CONTROLS, half).map("".join)
    long = st.lists(char, min_size=200, max_size=240).map("".join)
    return st.one_of(text, long.map(lambda s: _at_limit(s, 200, _stored_text)))


def _email_parts(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Pieces of an e-mail address: anything but controls, '@', '.' and whitespace."""
    char = st.one_of(
        st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="@."),
        st.sampled_from(
            FORMAT_MARKS + EMOJI + ZWJ_EMOJI + ["\ue000", "\U000fffff", "\U0010fffd", "\u0378"]
        ),
    ).filter(lambda c: not any(x.isspace() for x in c))
    return st.lists(char, min_size=min_size, max_size=max_size).map("".join)


@st.composite
def _emails(draw: st.DrawFn) -> str | None:
    if draw(st.booleans()):
        return draw(st.sampled_from([None, "", "an.nguyen+thi@example.edu.vn"]))
    local = draw(_email_parts(0, 32)) + draw(_CONTROLS) + draw(_email_parts(1, 32))
    labels = draw(st.lists(_email_parts(1, 63), min_size=1, max_size=3))
    return f"{local}@{'.'.join(labels)}.{draw(_email_parts(2, 63))}"


_PLACE_SPELLINGS: list[Callable[[str], str]] = [
    lambda s: s,
    str.upper,
    str.lower,
    lambda s: unicodedata.normalize("NFD", s),
    lambda s: "Thành phố " + s.removeprefix("TP "),
    lambda s: f"  {s.replace(' ', '   ')} ",
]


@st.composite
def _birthplaces(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # a country, kept as written (domain.md §4.2, 3a)
        char = st.one_of(_letters(), st.sampled_from(" -"))
        return draw(st.text(char, min_size=2, max_size=62))
    province = draw(st.sampled_from([p for p in reference.PROVINCES if p.cccd_code]))
    name = draw(st.sampled_from([province.name, province.name_from_2025]))
    return draw(st.sampled_from(_PLACE_SPELLINGS))(name)


@st.composite
def _ethnicities(draw: st.DrawFn) -> str:
    code, name = draw(st.sampled_from(reference.ETHNICITIES))
    spell = draw(st.sampled_from([str.upper, str.lower, lambda s: s.replace(" ", "-")]))
    return code if draw(st.booleans()) else spell(unicodedata.normalize("NFD", name))


@st.composite
def _subjects(draw: st.DrawFn) -> dict[str, Any]:
    """Electives, language and exemption that agree with each other (V5, domain.md §7.9)."""
    codes = [code for code, _ in reference.ELECTIVES]
    electives = draw(
        st.lists(st.sampled_from(codes), min_size=2, max_size=2, unique=True).filter(
            lambda pair: not set(pair) >= reference.EXCLUSIVE_ELECTIVES
        )
    )
    if "NN" not in electives:
        return {"electives": electives, "foreign_language": None, "exemptions": None}
    language = draw(st.sampled_from([code for code, _, _ in reference.LANGUAGES]))
    certificates = [code for code, lang, _ in reference.CERTIFICATES if lang == language]
    certificate = draw(st.sampled_from([None, *certificates]))
    return {
        "electives": electives,
        "foreign_language": language,
        "exemptions": None
        if certificate is None
        else {"foreign_language_certificate": certificate},
    }


_PHONE_SPELLINGS: list[Callable[[str], str]] = [
    lambda p: p,
    lambda p: "+84" + p[1:],
    lambda p: f"+84 {p[:4]} {p[4:7]} {p[7:]}",
    lambda p: f"{p[:3]}.{p[3:6]}.{p[6:]}",
]


def _validated(drawn: tuple[dict[str, Any], dict[str, Any]]) -> tuple[Any, Any, Any]:
    candidate, body = drawn
    context = CandidateContext(candidate["national_id"], datetime.now(VIETNAM).date())
    try:
        return candidate, body, validate_registration(body, context, CATALOG)
    except InvalidRegistration:
        return candidate, body, None


def _accepted() -> st.SearchStrategy[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(roster entry, body, canonical form) for a body the validator accepts: the property is
    about accepted forms only (a filter draws again, a few times, when the validator refuses)."""
    return _bodies().map(_validated).filter(lambda drawn: drawn[2] is not None)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(roster entry, body): a candidate's form with hostile free text, mostly valid."""
    candidate = draw(st.sampled_from(ROSTER))
    body = form_for(candidate, seed=draw(st.integers(0, 10_000)))
    body |= draw(_subjects())
    body["full_name"] = draw(_names())
    body["birthplace"] = draw(_birthplaces())
    body["ethnicity"] = draw(_ethnicities())
    body["email"] = draw(_emails())
    body["phone"] = draw(st.sampled_from(_PHONE_SPELLINGS))(body["phone"])
    body["priority_group"] = draw(
        st.sampled_from([None, *(c for c, _ in reference.PRIORITY_GROUPS)])
    )
    body["residence"] = body["residence"] | {
        "address": draw(_addresses()),
        "commune_code": draw(st.sampled_from([None, "", "07", "93"])),
        "kv1_over_18_months": draw(st.booleans()),
    }
    # The rest of the Phiếu (issue 13): free text as hostile as the address, and the new lists.
    body["contact_address"] = draw(st.one_of(st.none(), _addresses()))
    body["class_12"] = draw(st.sampled_from([None, "12A1", "12 Chuyên Toán", "12D-2"]))
    body["foreign_national"] = draw(st.booleans())
    body["graduation_priority"] = draw(st.sampled_from([None, "P025", "P050"]))
    if candidate["candidate_type"] in ("b", "c"):
        score = st.fixed_dictionaries(
            {
                "subject": st.sampled_from(["TOAN", "VAN", "LI", "SU"]),
                "score": st.sampled_from([5, "6.25", 9.5, "10", "7,5"]),
                "exam_year": st.integers(2018, 2025),
            }
        )
        body["reserved_scores"] = draw(
            st.lists(score, max_size=2, unique_by=lambda row: row["subject"])
        )
    return candidate, body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Drawing examples runs on the event loop between requests: never shed for loop lag here.
    return replace(settings, max_event_loop_lag_ms=0)


class Api:
    """The app under test, with one login per candidate for all the examples; its repr is short,
    since Hypothesis prints the test's arguments with a failing example."""

    def __init__(self, harness: Harness, roster: list[dict[str, Any]]) -> None:
        self.harness = harness
        self.settings = harness.settings
        self._ids = {entry["national_id"]: entry["candidate_id"] for entry in roster}
        self._auth: dict[int, dict[str, str]] = {}

    def __repr__(self) -> str:
        return "<the examreg API>"

    async def put(self, candidate: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        """PUT `body` as `candidate` with a fresh Idempotency-Key: (candidate_id, response)."""
        cid = self._ids[candidate["national_id"]]
        if cid not in self._auth:
            self._auth[cid] = await self.harness.login(candidate)
        response = await self.harness.client.put(
            "/api/v1/me/registration",
            json=body,
            headers={**self._auth[cid], "Idempotency-Key": uuid.uuid4().hex},
        )
        return cid, response


@pytest.fixture
async def api(settings: Settings, roster: list[dict[str, Any]]) -> AsyncIterator[Api]:
    async for harness in make_harness(settings):
        yield Api(harness, roster)


async def _dead_letters(aredis: Any, shards: int, receipts: set[str]) -> list[str]:
    """The dead letters of these receipts (an earlier, failed example may have left others)."""
    found = []
    for shard in range(shards):
        for entry_id, fields in await aredis.xrange(streams.dead_key(shard)):
            if fields.get("rid") in receipts:
                found.append(f"shard {shard} {entry_id}: {fields.get('reason')}")
    return found


@given(batch=st.lists(_accepted(), min_size=1, max_size=3))
async def test_every_form_the_validator_accepts_becomes_a_history_row_and_the_current_row(
    api: Api,
    pool: asyncpg.Pool,
    aredis: Any,
    batch: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
) -> None:
    sent = []
    for candidate, body, form in batch:
        cid, response = await api.put(candidate, body)
        assert response.status_code == 202, response.text
        sent.append((cid, response.json(), form))

    await drain(api.settings, pool, aredis)

    receipts = {receipt["receipt_id"] for _, receipt, _ in sent}
    assert await _dead_letters(aredis, api.settings.stream_shards, receipts) == []
    newest: dict[int, tuple[int, dict[str, Any]]] = {}
    for cid, receipt, form in sent:
        if receipt["version"] > newest.get(cid, (0, {}))[0]:
            newest[cid] = (receipt["version"], form)
        row = await pool.fetchrow(
            "SELECT receipt_id, form, full_name FROM registration_versions"
            " WHERE candidate_id = $1 AND version = $2",
            cid,
            receipt["version"],
        )
        assert row is not None, f"version {receipt['version']} of candidate {cid} has no row"
        assert row["receipt_id"] == receipt["receipt_id"]
        assert row["form"] == form
        assert row["full_name"] == form["full_name"]
    for cid, (version, form) in newest.items():
        current = await pool.fetchrow(
            "SELECT version, form FROM registrations WHERE candidate_id = $1", cid
        )
        assert (current["version"], current["form"]) == (version, form)
