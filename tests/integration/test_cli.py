"""The CLI for scripts, run as a real subprocess against the real engine and redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiodocker
import pytest
import redis

pytestmark = pytest.mark.usefixtures("cleanup_containers")


class Cli:
    """Runs ``python -m containerlease_tui`` with the test config."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "CONTAINERLEASE_CONFIG": str(config), **(env or {})}

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "containerlease_tui", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> object:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cli(config_file: Path) -> Cli:
    return Cli(config_file)


def _assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert text in lines[0]
    assert "Traceback" not in done.stderr


def test_provision_ls_extend_rm(cli: Cli, redis_url: str, key_prefix: str) -> None:
    lease = cli.json("provision", "busybox", "--duration", "20m", "--name", "api", "--wait")
    assert isinstance(lease, dict)
    assert lease["status"] == "running"
    for key in [
        "id",
        "name",
        "owner",
        "image",
        "image_ref",
        "status",
        "docker_id",
        "created_at",
        "expires_at",
        "seconds_left",
        "hourly_rate",
        "estimated_cost",
        "accrued_cost",
        "error",
    ]:
        assert key in lease
    assert lease["estimated_cost"] == "0.1200"  # 20 min at 0.36/h
    listed = cli.json("ls")
    assert isinstance(listed, list)
    assert [x["id"] for x in listed] == [lease["id"]]

    extended = cli.json("extend", "api", "--by", "30m")
    assert isinstance(extended, dict)
    assert extended["seconds_left"] > 40 * 60
    r = redis.Redis.from_url(redis_url)
    score = r.zscore(f"{key_prefix}:deadlines", lease["id"])
    assert score is not None and abs(score - time.time() - extended["seconds_left"]) < 5
    listed_after = cli.json("ls")
    assert isinstance(listed_after, list)
    assert listed_after[0]["expires_at"] == extended["expires_at"]

    human = cli("ls")
    assert human.returncode == 0
    assert "TIME LEFT" in human.stdout and "api" in human.stdout and " min" in human.stdout

    logs = cli("logs", lease["id"][:4], "--tail", "5")
    assert logs.returncode == 0 and "tick" in logs.stdout

    status = cli.json("status", "api")
    assert isinstance(status, dict) and status["state"] == "running"

    done = cli("rm", "api")
    assert done.returncode == 0, done.stderr
    final = cli.json("ls")
    assert isinstance(final, list) and final[0]["status"] == "released"
    types = [
        fields[b"type"].decode()
        for _id, fields in r.xrange(f"{key_prefix}:events")
        if fields[b"lease"].decode() == lease["id"]
    ]
    assert types == ["created", "creating", "running", "extended", "released"]


def test_provision_without_wait_completes_in_background(cli: Cli) -> None:
    lease = cli.json("provision", "busybox", "--duration", "5m")
    assert isinstance(lease, dict) and lease["status"] == "pending"
    deadline = time.monotonic() + 30
    status = "pending"
    while time.monotonic() < deadline:
        rows = cli.json("ls")
        assert isinstance(rows, list)
        status = rows[0]["status"]
        if status == "running":
            break
        time.sleep(0.2)
    assert status == "running"


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["provision", "nope"], 2, "unknown image"),
        (["provision", "busybox", "--duration", "0"], 2, "must be positive"),
        (["provision", "busybox", "--duration", "-1h"], 2, "negative"),
        (["provision", "busybox", "--duration", "99h"], 2, "allowed 1s to 8h"),
        (["provision", "busybox", "--duration", "1x"], 2, "cannot parse duration"),
        (["provision", "busybox", "--env", "NOEQUALS"], 2, "KEY=VALUE"),
        (["extend", "zzzzzzzz"], 2, "no lease matches"),
        (["rm", "../../x"], 2, "invalid lease id"),
        (["logs", "abc", "--tail", "x"], 2, "invalid --tail"),
        (["provision", "offline", "--wait"], 1, "provision failed"),
    ],
)
def test_bad_input(
    cli: Cli,
    args: list[str],
    code: int,
    text: str,
    docker_url: str,
    redis_url: str,
    key_prefix: str,
) -> None:
    _assert_one_line_error(cli(*args), code, text)
    rows = cli.json("ls", "--all")
    assert isinstance(rows, list)
    # Nothing is left behind: no container, no quota held; only a failed pull is on record.
    expected = ["failed"] if args[0] == "provision" and args[1] == "offline" else []
    assert [row["status"] for row in rows] == expected
    assert _containers(docker_url, key_prefix) == []
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.scard(f"{key_prefix}:active") == 0
    finally:
        client.close()


def _containers(docker_url: str, prefix: str) -> list[str]:
    """Ids of every container of this test's installation, in any state."""

    async def listing() -> list[str]:
        docker = aiodocker.Docker(url=docker_url)
        try:
            found = await docker.containers.list(
                all=True, filters={"label": [f"containerlease.instance={prefix}"]}
            )
            return [c.id for c in found]
        finally:
            await docker.close()

    return asyncio.run(listing())


def test_services_unreachable(config_file: Path, tmp_path: Path) -> None:
    no_redis = Cli(config_file, {"CONTAINERLEASE_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    done = no_redis("ls")
    _assert_one_line_error(done, 1, "unreachable")
    assert "hunter2" not in done.stderr
    no_docker = Cli(config_file, {"CONTAINERLEASE_DOCKER_URL": f"unix://{tmp_path}/none.sock"})
    _assert_one_line_error(no_docker("provision", "busybox", "--wait"), 1, "unreachable")


def test_usage_errors_exit_2(cli: Cli) -> None:
    _assert_one_line_error(cli("provision"), 2, "Missing argument 'IMAGE'")
    _assert_one_line_error(cli("frobnicate"), 2, "No such command 'frobnicate'")
    _assert_one_line_error(cli("ls", "--bogus"), 2, "No such option")
    _assert_one_line_error(cli("provision", "busybox", "--duration"), 2, "requires an argument")


def test_followed_logs_into_a_closed_pipe_end_quietly(cli: Cli) -> None:
    lease = cli.json("provision", "busybox", "--duration", "10m", "--wait")
    assert isinstance(lease, dict)
    # `containerlease logs ID -f | head -n 2`: head exits, the next write meets a closed pipe.
    follower = subprocess.Popen(
        [sys.executable, "-m", "containerlease_tui", "logs", str(lease["id"]), "--follow"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert follower.stdout is not None and follower.stderr is not None
    first = follower.stdout.readline()
    assert first.strip() == b"tick"
    follower.stdout.close()
    code = follower.wait(timeout=30)
    err = follower.stderr.read().decode()
    assert code == 0, err
    assert err == ""


def test_hidden_complete_cannot_touch_a_running_lease(cli: Cli, docker_url: str) -> None:
    lease = cli.json("provision", "busybox", "--duration", "10m", "--wait")
    assert isinstance(lease, dict)
    _assert_one_line_error(cli("_complete", str(lease["id"])), 2, "not pending")
    (row,) = cli.json("ls")  # type: ignore[misc]
    assert row["status"] == "running" and row["docker_id"] == lease["docker_id"]


def test_images(cli: Cli) -> None:
    rows = cli.json("images")
    assert isinstance(rows, list)
    by_name = {row["name"]: row for row in rows}
    assert by_name["busybox"]["present"] is True
    assert by_name["offline"]["present"] is False


def test_provision_wait_on_a_terminal_shows_steps_and_pull_progress(
    config_file: Path, pull_image: str, tmp_path: Path
) -> None:
    config = tmp_path / "pulling.toml"
    config.write_text(
        config_file.read_text()
        + f'\n[images.pulled]\nref = "{pull_image}"\nhourly_rate = "0.01"\n'
        + 'cmd = ["/bin/sh", "-c", "trap \'exit 0\' TERM; while :; do sleep 1; done"]\n'
    )
    main, tty = os.openpty()  # stderr on a terminal, stdout a pipe (as in `x=$(…)`)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "containerlease_tui", "provision", "pulled", "--wait", "--json"],
            env={**os.environ, "CONTAINERLEASE_CONFIG": str(config)},
            stdout=subprocess.PIPE,
            stderr=tty,
            text=True,
            timeout=120,
        )
        os.close(tty)
        tty = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if tty >= 0:
            os.close(tty)
        os.close(main)
    err = b"".join(chunks).decode(errors="replace")
    assert done.returncode == 0, err
    lease = json.loads(done.stdout)
    assert lease["status"] == "running"
    assert f"pulling {pull_image}" in err
    assert "layers " in err and "MiB" in err
    assert "running" in err
