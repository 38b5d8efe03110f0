"""An OOM-killed container says so (issue 15): parsed from the engine's inspect JSON
(``State.OOMKilled``), carried by the listing, described as ``OOM-killed (137)`` in ``ls``,
``status`` and the app rather than a bare ``exited``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from containerlease_tui.engine.parse import info_from_inspect, info_from_list
from containerlease_tui.leases import ContainerState
from tests.fakes.runtime import FakeRuntime

# Recorded from `docker inspect` (Docker 27) of a busybox container with --memory 64m whose
# command was `sh -c 'x=a; while true; do x=$x$x; done'` (trimmed to the fields we read).
OOM_INSPECT: dict[str, Any] = json.loads(
    """{
  "Id": "5d1b0f3a9c7e2b4d6f8a0c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d",
  "Created": "2026-12-03T19:05:11.402338129Z",
  "Path": "/bin/sh",
  "Args": ["-c", "x=a; while true; do x=$x$x; done"],
  "State": {
    "Status": "exited",
    "Running": false,
    "Paused": false,
    "Restarting": false,
    "OOMKilled": true,
    "Dead": false,
    "Pid": 0,
    "ExitCode": 137,
    "Error": "",
    "StartedAt": "2026-12-03T19:05:11.713004417Z",
    "FinishedAt": "2026-12-03T19:05:12.266194840Z"
  },
  "Name": "/cl-alice-hungry-q4w8e2rt",
  "Config": {"Labels": {"containerlease.lease": "q4w8e2rt", "containerlease.owner": "alice"}},
  "HostConfig": {"Memory": 67108864, "MemorySwap": 134217728},
  "NetworkSettings": {"Ports": {}}
}"""
)

# The same container in the list endpoint: nothing there tells an OOM kill from `docker kill`.
OOM_LISTED: dict[str, Any] = {
    "Id": OOM_INSPECT["Id"],
    "Names": ["/cl-alice-hungry-q4w8e2rt"],
    "State": "exited",
    "Status": "Exited (137) 3 seconds ago",
    "Created": 1796325911,
    "Labels": OOM_INSPECT["Config"]["Labels"],
}


def test_inspect_json_of_an_oom_kill_is_parsed() -> None:
    info = info_from_inspect(OOM_INSPECT)
    assert info.state == "exited" and not info.running
    assert info.exit_code == 137 and info.oom_killed
    state = ContainerState(info.state, info.exit_code, info.oom_killed)
    assert state.describe() == "OOM-killed (137)"
    assert not state.running


def test_oomkilled_means_nothing_once_the_container_runs_again_or_when_absent() -> None:
    restarted = json.loads(json.dumps(OOM_INSPECT))
    restarted["State"].update(Status="running", Running=True, ExitCode=0)
    assert not info_from_inspect(restarted).oom_killed  # a stale flag of an earlier run
    plain = json.loads(json.dumps(OOM_INSPECT))
    del plain["State"]["OOMKilled"]
    info = info_from_inspect(plain)
    assert not info.oom_killed
    assert ContainerState(info.state, info.exit_code, info.oom_killed).describe() == "exited (137)"
    odd = json.loads(json.dumps(OOM_INSPECT))
    odd["State"]["OOMKilled"] = "yes"  # not a boolean: not believed
    assert not info_from_inspect(odd).oom_killed


def test_the_listing_alone_cannot_tell_so_it_is_inspected() -> None:
    listed = info_from_list(OOM_LISTED)
    assert listed.exit_code == 137 and not listed.oom_killed


def test_the_fake_runtime_reports_an_oom_kill_in_inspect_and_listing() -> None:
    async def run() -> None:
        runtime = FakeRuntime()
        cid = "5d1b0f3a9c7e"
        runtime.add_container(
            cid,
            "cl-hungry",
            image_ref="busybox:latest",
            labels={"containerlease.lease": "q4w8e2rt"},
        )
        runtime.kill(cid, 137, oom=True)
        info = await runtime.inspect(cid)
        assert info is not None and info.oom_killed and info.exit_code == 137
        (listed,) = await runtime.list_leased()
        assert listed.oom_killed
        await runtime.start(cid)  # a restart clears it, as in Docker
        info = await runtime.inspect(cid)
        assert info is not None and not info.oom_killed

    asyncio.run(run())


def test_ls_json_and_table_say_oom_killed() -> None:
    from containerlease_tui import cli
    from containerlease_tui.models import Lease

    lease = Lease.model_validate(
        {
            "id": "q4w8e2rt",
            "name": "hungry",
            "owner": "alice",
            "image": "busybox",
            "image_ref": "busybox:latest",
            "status": "running",
            "docker_id": OOM_INSPECT["Id"][:12],
            "created_at": datetime(2026, 12, 3, 19, 5, tzinfo=UTC),
            "expires_at": datetime(2026, 12, 3, 20, 5, tzinfo=UTC),
            "hourly_rate": "0.01",
        }
    )
    states = {lease.id: ContainerState("exited", 137, True)}
    now = datetime(2026, 12, 3, 19, 6, tzinfo=UTC)
    public = cli._public(lease, now, states)
    assert public["container_state"] == "exited"
    assert public["exit_code"] == 137 and public["oom_killed"] is True
    assert cli._status_cell(lease, states) == "OOM-killed (137)"
    assert "OOM-killed (137)" in cli._table([lease], now, states)
