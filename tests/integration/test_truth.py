"""Issue 15 item 2 against the real engine: a container that dies shows it (``ls``, ``--json``),
and ``provision --wait`` of an image whose command fails exits 1 with the code."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import Cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_containers")]


@pytest.fixture
def dying_cli(config_file: Path, test_image: str, tmp_path: Path) -> Cli:
    text = config_file.read_text()
    text = text.replace(
        "[images.offline]",
        f"""[images.dying]
ref = "{test_image}"
hourly_rate = "0.01"
description = "its command fails at once"
cmd = ["/bin/sh", "-c", "echo starting; echo cannot open the database >&2; exit 3"]

[images.offline]""",
    )
    path = tmp_path / "dying.toml"
    path.write_text(text)
    return Cli(path)


def test_provision_wait_of_a_dying_image_exits_1_with_the_code(dying_cli: Cli) -> None:
    done = dying_cli("provision", "dying", "--duration", "10m", "--wait", "--json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "exited (3) right after starting" in done.stderr
    assert "cannot open the database" in done.stderr  # the last log lines
    assert "Traceback" not in done.stderr
    record = json.loads(done.stdout)
    assert record["container_state"] == "exited (3)"


def test_ls_shows_a_container_killed_from_outside(dying_cli: Cli, docker_url: str) -> None:
    lease = dying_cli.json("provision", "busybox", "--duration", "10m", "--wait")
    assert isinstance(lease, dict)
    killed = subprocess.run(
        ["docker", "-H", docker_url, "kill", lease["docker_id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 30
    while True:
        rows = dying_cli.json("ls")
        assert isinstance(rows, list)
        row = next(r for r in rows if r["id"] == lease["id"])
        if row["container_state"] == "exited" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row["status"] == "running"  # still leased, still billed
    assert row["container_state"] == "exited"
    assert row["exit_code"] == 137
    table = dying_cli("ls").stdout
    assert "exited (137)" in table


@pytest.fixture
def hungry_cli(config_file: Path, test_image: str, tmp_path: Path) -> Cli:
    """A catalog with an image whose command grows its memory until the OOM killer ends it
    (the test config gives every lease 64m)."""
    text = config_file.read_text()
    assert 'memory = "64m"' in text
    text = text.replace(
        "[images.offline]",
        f"""[images.hungry]
ref = "{test_image}"
hourly_rate = "0.01"
description = "eats memory until the OOM killer ends it"
cmd = ["/bin/sh", "-c", "echo eating; x=a; while true; do x=$x$x; done"]

[images.offline]""",
    )
    path = tmp_path / "hungry.toml"
    path.write_text(text)
    return Cli(path)


def _docker(docker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", docker_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_oom_killed_container_shows_oom_killed_in_ls_and_status(
    hungry_cli: Cli, docker_url: str
) -> None:
    limits = _docker(docker_url, "info", "--format", "{{.MemoryLimit}}")
    if limits.stdout.strip() != "true":
        pytest.skip(f"this engine cannot limit memory (MemoryLimit={limits.stdout.strip()!r})")
    done = hungry_cli("provision", "hungry", "--duration", "10m", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    lease = json.loads(done.stdout)
    deadline = time.monotonic() + 60
    row: dict[str, object] = {}
    while time.monotonic() < deadline:
        rows = hungry_cli.json("ls")
        assert isinstance(rows, list)
        row = next(r for r in rows if r["id"] == lease["id"])
        if row["container_state"] not in (None, "running", "created"):
            break
        time.sleep(0.2)
    if row.get("container_state") in (None, "running", "created"):
        inspect = _docker(
            docker_url, "inspect", "--format", "{{json .State}}", str(lease["docker_id"])
        )
        pytest.fail(f"not OOM-killed within 60 s: {row} {inspect.stdout[:300]}")
    assert row["container_state"] == "exited"
    assert row["exit_code"] == 137
    assert row["oom_killed"] is True
    assert row["status"] == "running"  # still leased, still billed
    assert "OOM-killed (137)" in hungry_cli("ls").stdout
    status = hungry_cli("status", lease["id"])
    assert status.returncode == 0, status.stderr
    assert "state: OOM-killed (137)" in status.stdout
    data = hungry_cli.json("status", lease["id"])
    assert isinstance(data, dict)
    assert data["oom_killed"] is True and data["exit_code"] == 137
