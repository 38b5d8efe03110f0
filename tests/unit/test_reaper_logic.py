"""The reaper's pure logic: backoff, wake-up times, wording, label parsing, JSON logs, status."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from containerlease_tui import __version__
from containerlease_tui.config import Settings
from containerlease_tui.engine import ContainerInfo, EngineUnavailable
from containerlease_tui.reaper import (
    NO_REAPER,
    WAKE_SLACK,
    JsonFormatter,
    PassResult,
    Reaper,
    _LabelIndex,
    error_backoff,
    humane_left,
    parse_label_deadline,
    postpone_delay,
    reaper_status,
    retry_delay,
    wake_delay,
)
from containerlease_tui.store import ReaperBeat

S = timedelta(seconds=1)
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("attempt", [0, 1, 2, 5])
def test_retry_delay_doubles_with_jitter(attempt: int) -> None:
    rng = random.Random(attempt)
    base = timedelta(milliseconds=200)
    for _ in range(50):
        delay = retry_delay(attempt, base, rng)
        nominal = 0.2 * 2**attempt
        assert 0.5 * nominal <= delay <= 1.5 * nominal


def test_retry_delay_jitter_varies() -> None:
    rng = random.Random(1)
    delays = {round(retry_delay(1, S, rng), 6) for _ in range(20)}
    assert len(delays) > 10


def test_postpone_grows_then_caps() -> None:
    rng = random.Random(7)
    interval = 30 * S
    nominal = [30, 60, 120, 240, 300, 300, 300]
    for failures, expected in enumerate(nominal, start=1):
        got = postpone_delay(failures, interval, rng).total_seconds()
        assert 0.8 * expected <= got <= 1.2 * expected, (failures, got)
    # A poll interval longer than the cap is the cap.
    long = postpone_delay(9, timedelta(minutes=20), rng).total_seconds()
    assert 0.8 * 1200 <= long <= 1.2 * 1200


def test_postpone_huge_failure_counts_do_not_overflow() -> None:
    assert postpone_delay(10_000, 30 * S) <= timedelta(minutes=6)


def test_error_backoff_is_bounded_by_the_interval() -> None:
    interval = 2 * S
    assert error_backoff(1, timedelta(milliseconds=50), interval) <= 0.2 * 1.2
    assert error_backoff(100, timedelta(milliseconds=50), interval) <= 2 * 1.2
    assert error_backoff(3, timedelta(milliseconds=50), interval) >= 0.8 * 0.8


def test_wake_delay_nothing_scheduled_is_the_interval() -> None:
    assert wake_delay(NOW, [None], 30.0, 0.5) == 30.0
    assert wake_delay(NOW, [], 30.0, 0.5) == 30.0


def test_wake_delay_earliest_future_moment_plus_slack() -> None:
    moments = [NOW + 10 * S, NOW + 2.5 * S, None, NOW + 40 * S]
    assert wake_delay(NOW, moments, 30.0, 0.5) == pytest.approx(2.5 + WAKE_SLACK)


def test_wake_delay_past_moment_polls_after_the_floor() -> None:
    assert wake_delay(NOW, [NOW - 3 * S, NOW + 10 * S], 30.0, 0.5) == 0.5
    assert wake_delay(NOW, [NOW], 30.0, 0.5) == 0.5
    # The floor never stretches beyond the interval.
    assert wake_delay(NOW, [NOW - S], 0.2, 0.5) == 0.2


def test_wake_delay_far_moment_is_capped_by_the_interval() -> None:
    assert wake_delay(NOW, [NOW + timedelta(hours=3)], 30.0, 0.5) == 30.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.01, "1 s"),
        (1, "1 s"),
        (1.2, "2 s"),
        (42.1, "43 s"),
        (59.0, "59 s"),
        (60, "1 min"),
        (119.99, "2 min"),
        (120, "2 min"),
        (599.5, "10 min"),
        (3600, "1 h"),
        (5400, "1 h 30 min"),
        (7200, "2 h"),
    ],
)
def test_humane_left(seconds: float, text: str) -> None:
    assert humane_left(seconds) == text


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("2025-03-01T12:00:00Z", NOW),
        ("2025-03-01T12:00:00.250000Z", NOW + timedelta(milliseconds=250)),
        ("2025-03-01T12:00:00+00:00", NOW),
        ("2025-03-01T14:00:00+02:00", NOW),
        ("2025-03-01T12:00:00", NOW),  # no zone: taken as UTC
        (" 2025-03-01T12:00:00Z ", NOW),
    ],
)
def test_parse_label_deadline(label: str, expected: datetime) -> None:
    parsed = parse_label_deadline(label)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("label", [None, "", "tomorrow", "2025-13-01T00:00:00Z", "1700000000"])
def test_parse_label_deadline_rejects_garbage(label: str | None) -> None:
    assert parse_label_deadline(label) is None


def _format(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "reap %s", ("failed",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def test_json_formatter_one_object_with_fields() -> None:
    out = _format(lease="abcd2345", owner="alice", action="fail", at=NOW)
    assert out["level"] == "warning"
    assert out["msg"] == "reap failed"
    assert out["lease"] == "abcd2345" and out["owner"] == "alice" and out["action"] == "fail"
    assert out["at"] == str(NOW)  # non-JSON values are written as text
    assert str(out["ts"]).endswith("Z")
    datetime.fromisoformat(str(out["ts"]).replace("Z", "+00:00"))
    assert not {"args", "levelno", "pathname", "exc_info", "thread"} & out.keys()


def test_json_formatter_exception_becomes_one_line_error() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "oops", None, (type(exc), exc, exc.__traceback__)
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["error"] == "boom second line"


def test_json_formatter_through_a_logger(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    log = logging.getLogger("test.reaper.json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("reaped", extra={"lease": "l1", "container": "abc"})
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert json.loads(err[0])["container"] == "abc"


def test_pass_result_counts() -> None:
    result = PassResult(due=3, reaped=2, failed=1, swept=4)
    assert result.counts() == {
        "due": 3,
        "reaped": 2,
        "failed": 1,
        "skipped": 0,
        "swept": 4,
        "warned": 0,
    }
    assert PassResult(dry_run=True).dry_run


def test_reaper_beat_identity_and_ttl() -> None:
    settings = Settings(reaper={"interval": "2s"})  # type: ignore[arg-type]
    reaper = Reaper(settings, store=None, engine=None, mode="tui")  # type: ignore[arg-type]
    assert reaper.beat.version == __version__
    assert reaper.beat.mode == "tui"
    assert reaper.beat.ttl_seconds == 6.0  # three heartbeats of 2 s
    slow = Reaper(Settings(), store=None, engine=None)  # type: ignore[arg-type]
    assert slow.beat.ttl_seconds == 15.0 and slow.beat.mode == "headless"


@dataclass
class _FakeStore:
    beats: list[ReaperBeat] = field(default_factory=list)

    async def reapers(self) -> list[ReaperBeat]:
        return self.beats


async def test_reaper_status_none() -> None:
    assert await reaper_status(_FakeStore()) == NO_REAPER  # type: ignore[arg-type]
    assert "will not be cleaned" in NO_REAPER


async def test_reaper_status_alive_with_last_pass() -> None:
    ago = datetime.now(UTC) - timedelta(seconds=3)
    beat = ReaperBeat(host="box", pid=42, last_pass=ago.isoformat())
    line = await reaper_status(_FakeStore([beat]))  # type: ignore[arg-type]
    assert line in (
        "reaper alive on box (pid 42, last pass 3s ago)",
        "reaper alive on box (pid 42, last pass 4s ago)",
    )


async def test_reaper_status_no_pass_yet_and_several() -> None:
    now = datetime.now(UTC)
    beats = [
        ReaperBeat(host="a", pid=1),
        ReaperBeat(host="b", pid=2, last_pass=now.isoformat()),
    ]
    line = await reaper_status(_FakeStore(beats))  # type: ignore[arg-type]
    assert line == "reaper alive on b (pid 2, last pass 0s ago) and 1 more"
    only = await reaper_status(_FakeStore([ReaperBeat(host="a", pid=1)]))  # type: ignore[arg-type]
    assert only == "reaper alive on a (pid 1, no pass yet)"


class _FakeEngine:
    """list_leased fails ``failures`` times, then returns ``infos``."""

    def __init__(self, infos: list[ContainerInfo], failures: int = 0) -> None:
        self.infos = infos
        self.failures = failures
        self.calls = 0

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.failures:
            self.failures -= 1
            raise EngineUnavailable("the Docker engine is unreachable")
        return self.infos


def _info(cid: str, lease: str, instance: str) -> ContainerInfo:
    return ContainerInfo(
        id=cid,
        name=cid,
        state="running",
        running=True,
        health=None,
        started_at=None,
        created_at=None,
        exit_code=None,
        labels={"containerlease.lease": lease, "containerlease.instance": instance},
    )


async def test_label_index_lists_once_per_batch_and_checks_the_instance() -> None:
    engine = _FakeEngine([_info("c1", "l1", "cl"), _info("c2", "l1", "cl"), _info("c3", "l1", "x")])
    index = _LabelIndex(engine, "cl")  # type: ignore[arg-type]
    found = await asyncio.gather(*(index.containers_of("l1", -math.inf) for _ in range(20)))
    assert engine.calls == 1
    assert all(ids == ["c1", "c2"] for ids in found)  # c3 belongs to another installation
    assert await index.containers_of("l2", -math.inf) == []
    assert await index.containers_of("l1", time.monotonic()) == ["c1", "c2"]  # fresher listing
    assert engine.calls == 2


async def test_label_index_failure_is_shared_then_retried() -> None:
    engine = _FakeEngine([_info("c1", "l1", "cl")], failures=1)
    index = _LabelIndex(engine, "cl")  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(index.containers_of("l1", -math.inf) for _ in range(10)), return_exceptions=True
    )
    assert engine.calls == 1  # one caller waited on the engine; the others failed at once
    assert all(isinstance(r, EngineUnavailable) for r in results)
    assert await index.containers_of("l1", time.monotonic()) == ["c1"]
    assert engine.calls == 2
