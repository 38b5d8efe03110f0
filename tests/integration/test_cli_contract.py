"""The CLI contract for scripts: docs/cli-json.md against the real output, and issue 16's fixes
(closed leases have no time left, a failed `provision --wait` shows its record, `ls --active`,
`exec`, `logs -f` ending at a reap, short prefixes, shell completion)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from containerlease_tui.cli import cli as cli_group

pytestmark = pytest.mark.usefixtures("cleanup_containers")


class Cli:
    """``python -m containerlease_tui`` with the test config (a configured Redis URL)."""

    def __init__(self, config: Path, tmp_path: Path) -> None:
        self.env = {
            **os.environ,
            "CONTAINERLEASE_CONFIG": str(config),
            # Never the developer's own state: an embedded store started by mistake lands here.
            "XDG_STATE_HOME": str(tmp_path / "state"),
        }

    def __call__(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "containerlease_tui", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> object:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cli(config_file: Path, tmp_path: Path) -> Cli:
    return Cli(config_file, tmp_path)


def _lease(cli: Cli, *args: str) -> dict[str, object]:
    lease = cli.json("provision", "busybox", "--wait", *args)
    assert isinstance(lease, dict) and lease["status"] == "running", lease
    return lease


# --- docs/cli-json.md --------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-json.md"


def _doc_sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _doc_fields(section: str) -> set[str]:
    """The backticked names in the first column of the section's table."""
    return set(re.findall(r"^\| `([a-z_.]+)` \|", _doc_sections()[section], flags=re.MULTILINE))


def _doc_commands() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_ ]+)` \| ([^|]+) \|$", _doc_sections()["Commands"], re.M)
    return {command: prints.strip() for command, prints in rows}


def _json_commands(group: click.Group, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _json_commands(command, f"{prefix}{name} ")
        elif any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            found.add(prefix + name)
    return found


def _keys(value: object, prefix: str = "") -> set[str]:
    """The JSON object's keys, nested ones as ``outer.inner``."""
    assert isinstance(value, dict), value
    keys: set[str] = set()
    for key, inner in value.items():
        if isinstance(inner, dict):
            keys |= _keys(inner, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_the_doc_lists_every_json_command() -> None:
    assert set(_doc_commands()) == _json_commands(cli_group)


@pytest.mark.timeout(360)  # volumes and cp added a second lease and five more CLI runs
def test_every_documented_field_is_in_the_output_and_nothing_else(cli: Cli) -> None:
    shapes = {
        "Lease",
        "Container",
        "Status",
        "Image",
        "Doctor",
        "Store",
        "Event",
        "Spend",
        "Capacity",
        "Reapers",
        "Volume",
        "Removed",
        "Copy",
    }
    for prints in _doc_commands().values():
        assert set(prints.removeprefix("array of ").split(" and ")) <= shapes, prints
    lease_fields, status_fields = _doc_fields("Lease"), _doc_fields("Status")
    assert lease_fields and status_fields

    lease = _lease(cli, "--duration", "20m")
    lease_id = str(lease["id"])
    outputs: dict[str, object] = {
        "provision": lease,
        "ls": cli.json("ls"),
        "extend": cli.json("extend", lease_id, "--by", "5m"),
        "stop": cli.json("stop", lease_id),
        "start": cli.json("start", lease_id),
        "restart": cli.json("restart", lease_id),
        "status": cli.json("status", lease_id),
        "images": cli.json("images"),
        "doctor": cli.json("doctor"),
        "store status": cli.json("store", "status"),
        "rm": cli.json("rm", lease_id),
    }
    outputs["store start"] = outputs["store status"]  # same shape; starting one is test_embedded's
    outputs.update(_volume_and_copy_outputs(cli))
    _check_shapes(outputs)


ISSUE_18 = ("events", "spend", "capacity", "reapers")
"""The commands of the activity log, spend and capacity (checked on their own: one test of
every command would outlast the timeout on a loaded machine)."""


def test_every_documented_field_of_the_activity_commands(cli: Cli) -> None:
    lease = _lease(cli, "--duration", "20m")
    outputs: dict[str, object] = {
        "spend": cli.json("spend"),
        "capacity": cli.json("capacity"),
        "reapers": cli.json("reapers"),
    }
    lines = cli("events", "--json")
    assert lines.returncode == 0, lines.stderr
    first = json.loads(lines.stdout.splitlines()[0])  # one object per line
    assert first["lease"] == lease["id"]
    outputs["events"] = first
    _check_shapes(outputs)


def _check_shapes(outputs: dict[str, object]) -> None:
    """Each documented command's output has exactly the documented fields (``outputs`` holds
    every command but those of the other test)."""
    documented = _doc_commands()
    others = set(ISSUE_18) if "ls" in outputs else set(documented) - set(ISSUE_18)
    assert set(outputs) == set(documented) - others
    for command, prints in documented.items():
        if command in others:
            continue
        output = outputs[command]
        if prints.startswith("array of "):
            assert isinstance(output, list) and output, (command, output)
            output = output[0]
        expected: set[str] = set()
        for shape in prints.removeprefix("array of ").split(" and "):
            expected |= _doc_fields(shape)
        assert _keys(output) == expected, (command, _keys(output) ^ expected)


def _volume_and_copy_outputs(cli: Cli) -> dict[str, object]:
    """``volumes``, ``volume ls``, ``volume rm`` and ``cp``, over a lease with a volume."""
    import tempfile

    lease = _lease(cli, "--duration", "20m", "-v", "contract:/contract")
    lease_id = str(lease["id"])
    found: dict[str, object] = {
        "volumes": cli.json("volumes"),
        "volume ls": cli.json("volume", "ls"),
    }
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.txt"
        source.write_text("in")
        found["cp"] = cli.json("cp", str(source), f"{lease_id}:/tmp")
    cli.json("rm", lease_id)
    found["volume rm"] = cli.json("volume", "rm", "contract")
    return found


# --- fixes -----------------------------------------------------------------------------------


def test_closed_leases_have_no_time_left(cli: Cli) -> None:
    lease = _lease(cli, "--duration", "20m")
    assert isinstance(lease["seconds_left"], float | int) and lease["seconds_left"] > 1000
    released = cli.json("rm", str(lease["id"]))
    assert isinstance(released, dict) and released["status"] == "released"
    assert released["seconds_left"] == 0
    (row,) = cli.json("ls")  # type: ignore[misc]
    assert row["status"] == "released" and row["seconds_left"] == 0


def test_failed_provision_wait_prints_the_record_and_exits_1(cli: Cli) -> None:
    done = cli("provision", "offline", "--wait", "--json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    record = json.loads(done.stdout)
    assert record["status"] == "failed" and record["error"] and record["id"]
    assert record["seconds_left"] == 0
    line = done.stderr.strip()
    assert "\n" not in line and "provision failed" in line and record["id"] in line
    (row,) = cli.json("ls")  # type: ignore[misc]
    assert row["id"] == record["id"] and row["status"] == "failed"
    # Without --json: nothing on stdout, the one line names the record.
    plain = cli("provision", "offline", "--wait")
    assert plain.returncode == 1 and plain.stdout == ""
    assert "recorded as failed" in plain.stderr


def test_ls_active(cli: Cli) -> None:
    kept = _lease(cli, "--duration", "20m")
    gone = _lease(cli, "--duration", "20m")
    cli.json("rm", str(gone["id"]))
    everything = cli.json("ls")
    active = cli.json("ls", "--active")
    assert isinstance(everything, list) and isinstance(active, list)
    assert {x["id"] for x in everything} == {kept["id"], gone["id"]}
    assert [x["id"] for x in active] == [kept["id"]]
    assert [x["id"] for x in cli.json("ls", "--active", "--all")] == [kept["id"]]  # type: ignore[attr-defined]


def test_doctor_json(cli: Cli, redis_url: str) -> None:
    report = cli.json("doctor")
    assert isinstance(report, dict)
    assert report["ok"] is True
    assert report["store"]["kind"] == "configured" and report["store"]["ok"] is True
    assert report["store"]["url"].startswith(redis_url.split("@")[0].split("//")[0])
    assert report["store"]["path"] is None
    assert report["docker"]["ok"] is True and report["docker"]["detail"].startswith("engine ")
    broken = cli("doctor", "--json", env={"CONTAINERLEASE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert broken.returncode == 1
    bad = json.loads(broken.stdout)
    assert bad["ok"] is False and bad["store"]["ok"] is False and bad["reaper"]["alive"] is None


def test_exec_keeps_streams_apart_and_returns_the_exit_code(cli: Cli) -> None:
    lease = _lease(cli, "--duration", "20m")
    done = cli("exec", str(lease["id"]), "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "out\n" and done.stderr == "err\n"
    # Options after the lease belong to the command, even without "--".
    listed = cli("exec", str(lease["name"]), "ls", "-d", "/bin")
    assert listed.returncode == 0 and listed.stdout == "/bin\n", listed.stderr
    missing = cli("exec", str(lease["id"]), "--", "no-such-command")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    cli.json("stop", str(lease["id"]))
    stopped = cli("exec", str(lease["id"]), "--", "true")
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    assert len(stopped.stderr.strip().splitlines()) == 1


def test_followed_logs_end_cleanly_when_the_lease_is_reaped(cli: Cli) -> None:
    lease = _lease(cli, "--duration", "3s")
    follower = subprocess.Popen(
        [sys.executable, "-m", "containerlease_tui", "logs", str(lease["id"]), "-f"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "tick"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cli("--reaper", "--once")
            (row,) = cli.json("ls")  # type: ignore[misc]
            if row["status"] == "expired":
                break
            time.sleep(0.5)
        assert row["status"] == "expired"
        _out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    last = err.strip().splitlines()[-1]
    assert last == f"containerlease: lease {lease['id']} expired: its container was removed", err
    assert "Traceback" not in err and "dead" not in err


def test_a_one_character_reference_says_prefixes_need_two(cli: Cli) -> None:
    done = cli("status", "9")
    assert done.returncode == 2
    assert "a prefix needs at least 2 characters" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- shell completion --------------------------------------------------------------------------


def _complete(cli: Cli, line: str) -> list[str]:
    words = line.split(" ")
    done = cli(
        env={
            "_CONTAINERLEASE_COMPLETE": "bash_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return [row.split(",", 1)[1] for row in done.stdout.splitlines() if "," in row]


def test_completion_lists_commands_options_images_and_lease_ids(cli: Cli) -> None:
    lease = _lease(cli, "--duration", "20m", "--name", "web")
    assert "provision" in _complete(cli, "containerlease pro")
    assert {"--all", "--active"} <= set(_complete(cli, "containerlease ls --a"))
    assert _complete(cli, "containerlease provision bu") == ["busybox"]
    offered = _complete(cli, "containerlease rm ")
    assert str(lease["id"]) in offered and "web" in offered
    assert _complete(cli, f"containerlease logs {str(lease['id'])[:3]}") == [lease["id"]]
    assert _complete(cli, "containerlease store ") == ["start", "status", "stop"]
    # Nobody else's leases, and nothing when the store is down (no traceback, no wait).
    elsewhere = cli(
        env={
            "_CONTAINERLEASE_COMPLETE": "bash_complete",
            "COMP_WORDS": "containerlease rm ",
            "COMP_CWORD": "2",
            "CONTAINERLEASE_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        timeout=30,
    )
    assert elsewhere.returncode == 0 and elsewhere.stdout.strip() == ""
