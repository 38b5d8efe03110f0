"""The label schema (labels.py), the one RFC 3339 parser, and engine.cleanup against a fake."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from containerlease_tui.engine import ContainerInfo, EngineUnavailable, NotOurs, own_container
from containerlease_tui.engine.cleanup import remove_lease_containers
from containerlease_tui.labels import (
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_OWNER,
    belongs,
    format_label_time,
    label_filter,
    lease_of,
    parse_label_deadline,
    parse_rfc3339,
    rfc3339_parts,
)

PACKAGE = Path(__file__).resolve().parents[2] / "containerlease_tui"


def test_docker_times_to_the_nanosecond() -> None:
    parts = rfc3339_parts("2025-03-01T12:00:00.123456789Z")
    assert parts == (datetime(2025, 3, 1, 12, tzinfo=UTC), 123456789)
    assert parse_rfc3339("2025-03-01T14:00:00.5+02:00") == datetime(
        2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["2025-03-01T12:00:00", "2025-13-01T00:00:00Z", "x", "", 7, None])
def test_not_a_zoned_time(text: object) -> None:
    assert parse_rfc3339(text) is None


def test_a_zoneless_label_deadline_is_utc() -> None:
    assert parse_rfc3339("2025-03-01T12:00:00", naive_utc=True) == datetime(
        2025, 3, 1, 12, tzinfo=UTC
    )
    assert parse_label_deadline("2025-03-01T12:00:00") == datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_a_written_deadline_reads_back() -> None:
    moment = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    text = format_label_time(moment)
    assert text.endswith("Z")
    assert parse_label_deadline(text) == moment


def test_belongs_to_one_installation() -> None:
    ours = {LABEL_LEASE: "l1", LABEL_INSTANCE: "cl", LABEL_OWNER: "a", LABEL_EXPIRES: ""}
    assert belongs(ours, "cl")
    assert lease_of(ours, "cl") == "l1"
    assert not belongs(ours, "other")
    assert lease_of({LABEL_INSTANCE: "cl"}, "cl") is None
    assert label_filter("cl") == [LABEL_LEASE, f"{LABEL_INSTANCE}=cl"]
    assert label_filter() == [LABEL_LEASE]


def _info(cid: str, lease: str, instance: str) -> ContainerInfo:
    labels = {LABEL_LEASE: lease, LABEL_INSTANCE: instance}
    return ContainerInfo(cid, cid, "running", True, None, None, None, None, labels)


class _Runtime:
    def __init__(self, infos: list[ContainerInfo], busy: frozenset[str] = frozenset()) -> None:
        self.infos = infos
        self.busy = busy
        self.removed: list[str] = []
        self.fail = False

    async def list_leased(self, instance: str | None = None) -> list[ContainerInfo]:
        if self.fail:
            raise EngineUnavailable("the Docker engine is unreachable")
        return [i for i in self.infos if i.labels.get(LABEL_INSTANCE) == instance]

    async def remove(self, cid: str) -> bool:
        self.removed.append(cid)
        return cid not in self.busy

    async def inspect(self, cid: str) -> ContainerInfo | None:
        return next((i for i in self.infos if i.id == cid), None)


async def test_cleanup_by_id_and_by_label() -> None:
    runtime = _Runtime(
        [_info("c1", "l1", "cl"), _info("c2", "l1", "cl"), _info("c3", "l2", "cl")],
        busy=frozenset({"c2"}),
    )
    done = await remove_lease_containers(runtime, "l1", "c1", "cl")  # type: ignore[arg-type]
    assert runtime.removed == ["c1", "c2"]  # the one on record first, each once
    assert done.removed == ("c1",) and done.pending == ("c2",) and not done.done


async def test_cleanup_lists_before_removing() -> None:
    runtime = _Runtime([_info("c1", "l1", "cl")])
    runtime.fail = True
    with pytest.raises(EngineUnavailable):
        await remove_lease_containers(runtime, "l1", "c0", "cl")  # type: ignore[arg-type]
    assert runtime.removed == []
    given = await remove_lease_containers(runtime, "l1", None, "cl", labelled=["c9"])  # type: ignore[arg-type]
    assert given.removed == ("c9",) and given.done


async def test_cleanup_refuses_a_docker_id_that_is_not_the_leases() -> None:
    foreign = ContainerInfo("x1", "x1", "running", True, None, None, None, None, {})
    other = _info("o1", "l2", "cl")  # another lease's
    elsewhere = _info("e1", "l1", "other-installation")
    runtime = _Runtime([foreign, other, elsewhere, _info("c1", "l1", "cl")])
    for cid in ("x1", "o1", "e1"):
        runtime.removed.clear()
        done = await remove_lease_containers(runtime, "l1", cid, "cl")  # type: ignore[arg-type]
        assert runtime.removed == ["c1"]  # only the container labelled for this lease
        assert isinstance(done.refused, NotOurs) and done.refused.cid == cid
        assert "left untouched" in str(done.refused) and "\n" not in str(done.refused)
    assert await own_container(runtime, "gone", "l1", "cl") is None  # type: ignore[arg-type]


def test_only_compat_touches_aiodocker_internals() -> None:
    private = re.compile(r"\b_do_query\b|[\"']_resp[\"']|\._resp\b|aiodocker\.utils")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "_compat.py" and private.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_label_deadline_round_trip_is_stable() -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    for step in range(0, 10_000_000, 999_983):
        moment = now + timedelta(microseconds=step)
        assert parse_label_deadline(format_label_time(moment)) == moment
