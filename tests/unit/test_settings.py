"""Unit tests of `engine.settings`: parsing, start-up checks, the registration window, shards."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.settings import VIETNAM, Settings, SettingsError, Window, load


def at(text: str) -> datetime:
    """A Vietnam-local instant, e.g. at("2026-04-28 17:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=VIETNAM)


# -- scalars ----------------------------------------------------------------------------------


def test_no_variables_gives_the_documented_defaults() -> None:
    settings = load(env={})
    defaults = Settings()
    assert settings.stream_shards == defaults.stream_shards == 8
    assert settings.database_url is None and settings.redis_url is None
    assert settings.data_dir == Path(".examreg")
    assert settings.redis_check_durability is True
    assert settings.window == Window()


def test_ints_floats_strings_and_paths_are_parsed(tmp_path: Path) -> None:
    settings = load(
        env={
            "EXAMREG_STREAM_SHARDS": "16",
            "EXAMREG_WRITER_BATCH_SIZE": " 250 ",
            "EXAMREG_WRITER_SHUTDOWN_SECONDS": "2.5",
            "EXAMREG_DATABASE_URL": "postgresql://u@db/examreg",
            "EXAMREG_DATA_DIR": str(tmp_path / "data"),
            "EXAMREG_LOG_LEVEL": "debug",
        }
    )
    assert settings.stream_shards == 16
    assert settings.writer_batch_size == 250
    assert settings.writer_shutdown_seconds == 2.5
    assert settings.database_url == "postgresql://u@db/examreg"
    assert settings.data_dir == tmp_path / "data"
    assert isinstance(settings.data_dir, Path)
    assert settings.log_level == "debug"


def test_a_path_with_a_tilde_is_expanded() -> None:
    settings = load(env={"EXAMREG_DATA_DIR": "~/examreg"})
    assert settings.data_dir == Path("~/examreg").expanduser()
    assert "~" not in str(settings.data_dir)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_bools_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load(env={"EXAMREG_REDIS_CHECK_DURABILITY": raw}).redis_check_durability is expected


def test_an_empty_variable_means_the_default() -> None:
    settings = load(
        env={"EXAMREG_STREAM_SHARDS": "", "EXAMREG_LOG_LEVEL": "", "EXAMREG_CLOSES_AT": " "}
    )
    assert settings.stream_shards == 8
    assert settings.log_level == "info"
    assert settings.window.closes_at is None


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("EXAMREG_STREAM_SHARDS", "eight"),
        ("EXAMREG_STREAM_SHARDS", "8.0"),
        ("EXAMREG_DB_POOL_SIZE", "10 connections"),
        ("EXAMREG_IO_TIMEOUT_SECONDS", "soon"),
        ("EXAMREG_REDIS_CHECK_DURABILITY", "maybe"),
    ],
)
def test_a_malformed_value_is_an_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env={name: raw})


def test_an_unknown_log_level_is_rejected() -> None:
    with pytest.raises(SettingsError, match="EXAMREG_LOG_LEVEL"):
        load(env={"EXAMREG_LOG_LEVEL": "verbose"})


def test_trusted_proxies_are_addresses_or_networks_and_none_by_default() -> None:
    assert load(env={}).trusted_proxies == ()
    raw = " 10.8.0.0/16, 127.0.0.1 ,::1,, fd00::/8"
    settings = load(env={"EXAMREG_TRUSTED_PROXIES": raw})
    assert settings.trusted_proxies == ("10.8.0.0/16", "127.0.0.1", "::1", "fd00::/8")


@pytest.mark.parametrize("raw", ["proxy.internal", "10.0.0.0/33", "*"])
def test_a_trusted_proxy_that_is_no_address_is_rejected(raw: str) -> None:
    with pytest.raises(SettingsError, match="EXAMREG_TRUSTED_PROXIES"):
        load(env={"EXAMREG_TRUSTED_PROXIES": raw})


def test_the_password_minimum_is_eight_by_default_and_never_below() -> None:
    assert load(env={}).password_min_length == 8
    assert load(env={"EXAMREG_PASSWORD_MIN_LENGTH": "15"}).password_min_length == 15
    for raw in ("7", "65"):
        with pytest.raises(SettingsError, match="EXAMREG_PASSWORD_MIN_LENGTH"):
            load(env={"EXAMREG_PASSWORD_MIN_LENGTH": raw})


def test_the_login_throttle_defaults_fit_a_school_and_bad_values_are_refused() -> None:
    settings = load(env={})
    assert (settings.login_max_failures, settings.login_delay_seconds) == (5, 1.0)
    assert settings.login_lockout_seconds == 900
    assert (settings.login_address_max_failures, settings.login_address_window_seconds) == (
        300,
        900,
    )
    assert load(env={"EXAMREG_LOGIN_DELAY_SECONDS": "0.5"}).login_delay_seconds == 0.5
    for name, raw in (
        ("EXAMREG_LOGIN_DELAY_SECONDS", "0"),
        ("EXAMREG_LOGIN_ADDRESS_MAX_FAILURES", "0"),
        ("EXAMREG_LOGIN_MAX_FAILURES", "-1"),
    ):
        with pytest.raises(SettingsError, match=name):
            load(env={name: raw})


@pytest.mark.parametrize(
    "name",
    ["EXAMREG_STREAM_SHARDS", "EXAMREG_WRITER_BATCH_SIZE", "EXAMREG_DB_POOL_SIZE"],
)
@pytest.mark.parametrize("raw", ["0", "-1"])
def test_counts_must_be_positive(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(env={name: raw})


def test_an_override_is_validated_like_a_variable() -> None:
    with pytest.raises(SettingsError, match="EXAMREG_STREAM_SHARDS"):
        load(env={}, stream_shards=0)


@pytest.mark.parametrize("raw", ["0", "1.5", "-0.1"])
def test_the_redis_memory_ratio_must_be_in_0_1(raw: str) -> None:
    with pytest.raises(SettingsError, match="EXAMREG_REDIS_MEMORY_LIMIT_RATIO"):
        load(env={"EXAMREG_REDIS_MEMORY_LIMIT_RATIO": raw})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("EXAMREG_ARGON2_MEMORY_KIB", "8"),
        ("EXAMREG_LOGIN_MAX_FAILURES", "0"),
        ("EXAMREG_LOGIN_LOCKOUT_SECONDS", "0"),
        ("EXAMREG_SESSION_IDLE_SECONDS", "-1800"),
        ("EXAMREG_SESSION_ABSOLUTE_SECONDS", "-1"),
        ("EXAMREG_IO_TIMEOUT_SECONDS", "0"),
        ("EXAMREG_WRITER_LINGER_MS", "-5"),
        ("EXAMREG_MAX_BODY_BYTES", "10"),
        ("EXAMREG_LOGIN_QUEUE_LIMIT", "0"),
        ("EXAMREG_IDEMPOTENCY_TTL_SECONDS", "60"),
        ("EXAMREG_STREAM_SHARDS", "100000"),
        ("EXAMREG_HEADER_TIMEOUT_SECONDS", "0"),
        ("EXAMREG_BODY_TIMEOUT_SECONDS", "-1"),
        ("EXAMREG_MAX_HEADER_COUNT", "0"),
        ("EXAMREG_MAX_HEADER_BYTES", "100"),
    ],
)
def test_a_number_out_of_its_range_is_refused_at_start_with_the_range(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"{name}=.*out of range: use \d"):
        load(env={name: raw})


def test_argon2_must_cost_at_least_owasps_weakest_configuration() -> None:
    with pytest.raises(SettingsError, match=r"EXAMREG_ARGON2_MEMORY_KIB.*7 MiB"):
        load(env={"EXAMREG_ARGON2_MEMORY_KIB": "8"})
    with pytest.raises(SettingsError, match=r"EXAMREG_ARGON2_TIME_COST.*OWASP"):
        load(env={"EXAMREG_ARGON2_MEMORY_KIB": "7168", "EXAMREG_ARGON2_TIME_COST": "2"})
    assert load(env={"EXAMREG_ARGON2_MEMORY_KIB": "7168", "EXAMREG_ARGON2_TIME_COST": "5"})
    assert load(env={"EXAMREG_ARGON2_MEMORY_KIB": "47104", "EXAMREG_ARGON2_TIME_COST": "1"})


def test_the_defaults_and_the_test_settings_are_in_range() -> None:
    load(env={})
    load(env={}, writer_block_ms=100, writer_claim_idle_ms=400, writer_max_deliveries=2)


def test_trusted_hosts_are_a_comma_separated_list_of_names_without_ports() -> None:
    assert load(env={}).trusted_hosts == ("localhost", "127.0.0.1", "::1")
    raw = " Thi.Example.VN., *.thi.example.vn ,[::1], 10.0.0.7"
    assert load(env={"EXAMREG_TRUSTED_HOSTS": raw}).trusted_hosts == (
        "thi.example.vn",
        "*.thi.example.vn",
        "::1",
        "10.0.0.7",
    )
    assert load(env={"EXAMREG_TRUSTED_HOSTS": "*"}).trusted_hosts == ("*",)


@pytest.mark.parametrize(
    "raw", ["thi.example.vn:443", "http://thi.example.vn", "thi example", ",", "*.*", "a_b.vn"]
)
def test_a_trusted_host_that_is_not_a_host_name_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"EXAMREG_TRUSTED_HOSTS.*without ports"):
        load(env={"EXAMREG_TRUSTED_HOSTS": raw})


def test_the_services_database_role_defaults_to_examreg_app_and_none_turns_it_off() -> None:
    assert load(env={}).service_role == "examreg_app"
    assert load(env={"EXAMREG_DATABASE_ROLE": "desk_api"}).service_role == "desk_api"
    assert load(env={"EXAMREG_DATABASE_ROLE": "none"}).service_role is None


@pytest.mark.parametrize("raw", ["Examreg", "app; DROP TABLE x", "a-b", "x" * 64, "1app"])
def test_a_database_role_must_be_a_plain_name(raw: str) -> None:
    with pytest.raises(SettingsError, match="EXAMREG_DATABASE_ROLE"):
        load(env={"EXAMREG_DATABASE_ROLE": raw})


def test_a_secret_key_is_kept_or_generated() -> None:
    assert load(env={"EXAMREG_SECRET_KEY": "s3cret"}).secret_key == "s3cret"
    first, second = load(env={}).secret_key, load(env={}).secret_key
    assert len(first) >= 32 and first != second


def test_settings_are_frozen() -> None:
    settings = load(env={})
    with pytest.raises(AttributeError):
        settings.stream_shards = 2  # type: ignore[misc]


# -- the window -------------------------------------------------------------------------------


def test_a_bare_closing_date_means_17_00_in_vietnam() -> None:
    window = load(env={"EXAMREG_CLOSES_AT": "2026-04-28"}).window
    assert window.closes_at == at("2026-04-28 17:00")
    assert window.closes_at is not None
    assert window.closes_at.utcoffset() == timedelta(hours=7)


def test_a_bare_opening_date_means_midnight_in_vietnam() -> None:
    window = load(env={"EXAMREG_OPENS_AT": "2026-04-21"}).window
    assert window.opens_at == at("2026-04-21 00:00")


def test_a_bare_trial_closing_date_is_a_17_00_deadline_too() -> None:
    window = load(
        env={"EXAMREG_TRIAL_OPENS_AT": "2026-04-01", "EXAMREG_TRIAL_CLOSES_AT": "2026-04-05"}
    ).window
    assert window.trial_opens_at == at("2026-04-01 00:00")
    assert window.trial_closes_at == at("2026-04-05 17:00")


def test_a_date_time_with_an_offset_is_taken_as_given() -> None:
    window = load(env={"EXAMREG_CLOSES_AT": "2026-04-28T10:00:00Z"}).window
    assert window.closes_at == at("2026-04-28 17:00")


@pytest.mark.parametrize("name", ["EXAMREG_OPENS_AT", "EXAMREG_CLOSES_AT"])
def test_a_date_time_without_an_offset_is_rejected(name: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}.*offset"):
        load(env={name: "2026-04-28T17:00:00"})


@pytest.mark.parametrize("raw", ["28/04/2026", "2026-13-01", "tomorrow"])
def test_a_malformed_instant_is_rejected(raw: str) -> None:
    with pytest.raises(SettingsError, match="EXAMREG_CLOSES_AT"):
        load(env={"EXAMREG_CLOSES_AT": raw})


@pytest.mark.parametrize("name", ["EXAMREG_TRIAL_OPENS_AT", "EXAMREG_TRIAL_CLOSES_AT"])
def test_the_trial_needs_both_ends(name: str) -> None:
    with pytest.raises(SettingsError, match="both"):
        load(env={name: "2026-04-01"})


@pytest.mark.parametrize(
    ("opens", "closes", "what"),
    [
        ("EXAMREG_OPENS_AT", "EXAMREG_CLOSES_AT", "official"),
        ("EXAMREG_TRIAL_OPENS_AT", "EXAMREG_TRIAL_CLOSES_AT", "trial"),
    ],
)
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-04-28", "2026-04-21"),  # closes a week before it opens
        ("2026-04-28T17:00:00+07:00", "2026-04-28"),  # closes the instant it opens
    ],
)
def test_a_window_that_closes_before_it_opens_is_rejected(
    opens: str, closes: str, what: str, start: str, end: str
) -> None:
    with pytest.raises(SettingsError, match=f"{what} window closes before it opens"):
        load(env={opens: start, closes: end})


CALENDAR = Window(
    trial_opens_at=at("2026-04-01 00:00"),
    trial_closes_at=at("2026-04-05 17:00"),
    opens_at=at("2026-04-21 00:00"),
    closes_at=at("2026-04-28 17:00"),
)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("now", "phase"),
    [
        (at("2026-04-01 00:00") - TICK, "before"),
        (at("2026-04-01 00:00"), "trial"),  # opening instant is inside
        (at("2026-04-05 17:00") - TICK, "trial"),
        (at("2026-04-05 17:00"), "before"),  # closing instant is outside
        (at("2026-04-21 00:00") - TICK, "before"),
        (at("2026-04-21 00:00"), "official"),
        (at("2026-04-28 17:00") - TICK, "official"),
        (at("2026-04-28 17:00"), "closed"),
        (at("2026-06-11 07:30"), "closed"),
    ],
)
def test_phase_at_the_boundaries(now: datetime, phase: str) -> None:
    assert CALENDAR.phase(now) == phase


def test_phase_compares_instants_not_wall_clocks() -> None:
    # 10:00 UTC is 17:00 in Vietnam: the deadline itself.
    assert CALENDAR.phase(datetime.fromisoformat("2026-04-28T09:59:59+00:00")) == "official"
    assert CALENDAR.phase(datetime.fromisoformat("2026-04-28T10:00:00+00:00")) == "closed"


def test_with_nothing_configured_the_official_window_is_open() -> None:
    assert Window().phase(at("2026-01-01 00:00")) == "official"


# -- shards -----------------------------------------------------------------------------------


def test_shard_of_is_in_range_for_every_count() -> None:
    for shards in (1, 2, 8, 13):
        settings = load(env={"EXAMREG_STREAM_SHARDS": str(shards)})
        assert {settings.shard_of(cid) for cid in range(1, 2_000)} == set(range(shards))


def test_shard_of_is_stable() -> None:
    # Fixed expectations, not a second call: a hash() would differ between processes.
    settings = load(env={"EXAMREG_STREAM_SHARDS": "8"})
    assert [settings.shard_of(cid) for cid in (1, 8, 12_345, 2_000_000_017)] == [1, 0, 1, 1]
    assert settings.shard_of(12_345) == load(env={"EXAMREG_STREAM_SHARDS": "8"}).shard_of(12_345)
