"""Untrusted text made safe for a terminal (``containerlease_tui.sanitize``), and the files
``safefile`` writes without touching existing ones."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containerlease_tui.safefile import NoFreeName, write_new
from containerlease_tui.sanitize import (
    REPLACEMENT,
    clean,
    clean_log_line,
    is_clean,
    one_line,
)

# Everything a terminal may act on: C0 (but for tab and newline where kept), DEL, C1, bidi
# embeddings/overrides/isolates, lone surrogates.
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

SEQUENCES = {
    "osc52 clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "osc0 title": "\x1b]0;pwned\x07",
    "osc2 title, ST": "\x1b]2;pwned\x1b\\",
    "osc8 link": "\x1b]8;;https://evil.example\x1b\\",
    "dcs query": "\x1bP+q544e\x1b\\",
    "dcs decrqss": "\x1bP$qm\x1b\\",
    "apc": "\x1b_Gf=100;AAAA\x1b\\",
    "pm": "\x1b^private\x1b\\",
    "sos": "\x1bXstring\x1b\\",
    "csi cursor up": "\x1b[5A",
    "csi clear": "\x1b[2J",
    "csi dsr query": "\x1b[6n",
    "csi title report": "\x1b[21t",
    "sgr conceal": "\x1b[8m",
    "lone esc": "\x1b",
    "esc reset": "\x1bc",
    "esc charset": "\x1b(0",
    "c1 csi": "\x9b31m",
    "c1 osc": "\x9d0;pwned\x9c",
    "c1 dcs": "\x90+q544e\x9c",
    "c1 apc": "\x9fapc\x9c",
    "bidi rlo": "\u202e",
    "bidi lri": "\u2066",
    "bell": "\x07",
    "backspace": "\x08\x08\x08",
    "carriage return": "\r",
    "nul": "\x00",
    "del": "\x7f",
    "surrogate": "\udcff",
}


@pytest.mark.parametrize("sequence", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_every_kind_of_control_is_neutralised(sequence: str) -> None:
    text = f"before{sequence}after"
    for out in (clean(text), clean_log_line(text), one_line(text)):
        assert not UNSAFE.search(out), repr(out)
        assert "before" in out  # the text around a sequence stays
    assert "after" in clean(text) and "after" in one_line(text)
    # A lone ESC takes the next character with it (as a terminal would: ESC a is a sequence).
    assert ("fter" if sequence == "\x1b" else "after") in clean_log_line(text)


def test_clean_makes_controls_visible() -> None:
    assert clean("a\x1b]0;t\x07b") == "a^[]0;t^Gb"
    assert clean("x\x7fy\x00z") == "x^?y^@z"
    assert clean("c1\x9b31m") == f"c1{REPLACEMENT}31m"
    assert clean("evil\u202etxt.exe") == f"evil{REPLACEMENT}txt.exe"
    assert clean("a\tb") == "a\tb"
    assert clean("a\tb", tabs=False) == "a^Ib"
    assert clean("a\nb") == "a^Jb"
    assert clean("a\nb", newlines=True) == "a\nb"
    assert clean("plain ümlaut 日本 ✓") == "plain ümlaut 日本 ✓"


def test_one_line() -> None:
    assert one_line("1 validation error for Lease\nname\n  String should match") == (
        "1 validation error for Lease name String should match"
    )
    assert one_line("x" * 50, 10) == "x" * 9 + "…"
    assert one_line("\x1b[2Jboom") == "^[[2Jboom"


def test_log_lines_drop_sequences_and_keep_text() -> None:
    assert clean_log_line("\x1b[31mred\x1b[0m text\r\n") == "red text"
    assert clean_log_line("bell\x07 and \x1b]0;title\x07done") == "bell and done"
    assert clean_log_line("a\x9b1;31mb\x9d0;t\x9cc") == "abc"
    assert clean_log_line("\ttabbed") == "\ttabbed"
    assert clean_log_line("rtl\u202eoverride") == f"rtl{REPLACEMENT}override"
    assert clean_log_line("50%\r60%") == "50%60%"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=())))
def test_nothing_unsafe_survives(text: str) -> None:
    for out in (clean(text), clean_log_line(text), one_line(text)):
        assert not UNSAFE.search(out)
    assert "\n" not in one_line(text)
    assert is_clean(clean(text))


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x3000)))
def test_arbitrary_text_any_code_point(text: str) -> None:
    for out in (clean(text), clean_log_line(text), one_line(text)):
        assert not UNSAFE.search(out)


def test_write_new_never_follows_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "out.log").symlink_to(victim)
    (shared / "out-1.log").symlink_to(tmp_path / "dangling")  # a link to nothing, too
    (shared / "out-2.log").write_text("somebody's\n")
    written = write_new(shared, "out", ".log", b"mine\n")
    assert written == shared / "out-3.log"
    assert written.read_bytes() == b"mine\n"
    assert os.stat(written).st_mode & 0o777 == 0o600
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "dangling").exists()
    assert (shared / "out-2.log").read_text() == "somebody's\n"


def test_write_new_gives_up_with_one_clear_error(tmp_path: Path) -> None:
    for n in range(3):
        (tmp_path / (f"f-{n}.log" if n else "f.log")).write_text("x")
    with pytest.raises(NoFreeName, match="exist already"):
        write_new(tmp_path, "f", ".log", b"y", attempts=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f-1.log", "f-2.log", "f.log"]


# --- records are validated when read, not only when made ------------------------------------

HOSTILE_FIELDS = {
    "name": "dev\x1b]0;pwned\x07",
    "owner": "alice\u202e",
    "image": "ubuntu\x9b2J",
    "image_ref": "ubuntu:24.04\x1bP+q544e\x1b\\",
    "docker_id": "c0ffee\x1b[5A",
}


def _record(**overrides: object) -> str:
    from datetime import UTC, datetime, timedelta

    from containerlease_tui.models import Lease

    now = datetime(2025, 3, 14, tzinfo=UTC)
    lease = Lease(
        name="dev",
        owner="alice",
        image="ubuntu",
        image_ref="ubuntu:24.04",
        expires_at=now + timedelta(hours=1),
        created_at=now,
        hourly_rate=1,
    )
    data = lease.model_dump(mode="json")
    data.update(overrides)
    import json

    return json.dumps(data)


@pytest.mark.parametrize(("field", "value"), list(HOSTILE_FIELDS.items()))
def test_a_forged_record_is_refused_when_read(field: str, value: str) -> None:
    from pydantic import ValidationError

    from containerlease_tui.models import Lease

    with pytest.raises(ValidationError):
        Lease.model_validate_json(_record(**{field: value}))


@pytest.mark.parametrize(
    "owner", ["alice", "uid3999999991", "john.doe", "ops@example.com", "DOM\\bob", "host$", "_x"]
)
def test_account_names_stay_valid(owner: str) -> None:
    from containerlease_tui.models import Lease

    assert Lease.model_validate_json(_record(owner=owner)).owner == owner


def test_default_names_of_long_catalog_names_stay_valid() -> None:
    from containerlease_tui.models import Lease

    image = "a" * 40
    name = f"{image}-k7m2"
    lease = Lease.model_validate_json(_record(image=image, name=name))
    assert lease.name == name
    ipv6 = "[fd00::1]:5000/team/app:1.2@sha256:" + "a" * 64
    assert Lease.model_validate_json(_record(image_ref=ipv6)).image_ref == ipv6


def test_an_unrepresentable_account_name_becomes_its_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    from containerlease_tui import leases

    class Entry:
        pw_name = "evil\x1b]0;x\x07"

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: Entry())
    assert leases.current_user() == f"uid{os.getuid()}"


# --- messages -----------------------------------------------------------------------------


def test_an_out_of_range_duration_is_named_exactly() -> None:
    from datetime import timedelta

    from containerlease_tui.durations import DurationError, check_range, parse_duration

    with pytest.raises(DurationError, match=r"duration 2h1ms is out of range: allowed 1s to 2h"):
        check_range(parse_duration("7200001ms"), timedelta(seconds=1), timedelta(hours=2))
    with pytest.raises(DurationError, match=r"duration 0\.0004s is out of range"):
        check_range(timedelta(microseconds=400), timedelta(seconds=1), timedelta(hours=2))
    with pytest.raises(DurationError, match=r"allowed 1s500ms to 2h"):
        check_range(timedelta(seconds=1), timedelta(milliseconds=1500), timedelta(hours=2))


def test_the_helper_process_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from containerlease_tui import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), "relative/dir", *sys.path])
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    command = cli.helper_command("_complete", "abcd1234")
    assert command[:3] == [sys.executable, "-I", "-c"]
    assert command[-2:] == ["_complete", "abcd1234"]
    code = command[3]
    assert repr(str(tmp_path)) not in code and "'relative/dir'" not in code and "''" not in code
    assert "from containerlease_tui.cli import main" in code
    assert "PYTHONPATH" not in cli.helper_env()


def test_json_lines_escape_what_json_dumps_lets_through() -> None:
    import json
    import logging

    from containerlease_tui.reaper import JsonFormatter
    from containerlease_tui.sanitize import json_line

    value = {"error": "a\x1b]0;t\x07\x7f\x9b31m\u202e ümlaut"}
    line = json_line(value)
    assert json.loads(line) == value
    assert not UNSAFE.search(line) and "ümlaut" in line
    record = logging.LogRecord("r", logging.WARNING, __file__, 1, "reap failed", None, None)
    record.error = value["error"]
    formatted = JsonFormatter().format(record)
    assert not UNSAFE.search(formatted)
    assert json.loads(formatted)["error"] == value["error"]


# --- colours kept as data (clean_log_line(styles=True)) -----------------------------------------


def test_sgr_colours_become_spans_over_the_clean_text() -> None:
    from containerlease_tui.sanitize import SgrStyle, StyledLine

    line = clean_log_line(
        "\x1b[1;31mERR\x1b[22m red\x1b[0m \x1b[38;5;208mor\x1b[48;2;1;2;3mrgb\x1b[m.",
        styles=True,
    )
    assert isinstance(line, StyledLine) and line == "ERR red orrgb."
    assert line.spans == (
        (0, 3, SgrStyle(fg=1, bold=True)),
        (3, 7, SgrStyle(fg=1)),
        (8, 10, SgrStyle(fg=208)),
        (10, 13, SgrStyle(fg=208, bg=(1, 2, 3))),
    )
    assert clean_log_line("\x1b[92mbright\x1b[39m \x1b[104mbg", styles=True).spans == (  # type: ignore[attr-defined]
        (0, 6, SgrStyle(fg=10)),
        (7, 9, SgrStyle(bg=12)),
    )
    # No colour: a plain str, as without styles.
    assert type(clean_log_line("plain\x1b[2K text", styles=True)) is str


@pytest.mark.parametrize("sequence", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_hostile_sequences_inside_coloured_output_are_still_stripped(sequence: str) -> None:
    from containerlease_tui.sanitize import StyledLine

    text = f"\x1b[31mred {sequence}still red\x1b[0m after \x1b[1m{sequence}\x1b[0m"
    line = clean_log_line(text, styles=True)
    assert not UNSAFE.search(line)
    assert "\x1b" not in line and "pwned" not in line and "544e" not in line
    assert str(line) == clean_log_line(text)  # the same text as without styles
    assert isinstance(line, StyledLine)
    for start, end, style in line.spans:
        assert 0 <= start < end <= len(line)
        assert style.fg in (None, 1)


def test_conceal_blink_and_odd_sgr_are_not_honoured() -> None:
    from containerlease_tui.sanitize import SgrStyle, StyledLine

    # Conceal would hide text, blink distracts; a private or huge parameter list means nothing.
    for raw in ("\x1b[8msecret", "\x1b[5mblink", "\x1b[?1mx", "\x1b[" + "1;" * 40 + "31mx"):
        line = clean_log_line(raw, styles=True)
        assert type(line) is str, raw
    line = clean_log_line("\x1b[38;2;999;0;0mbad\x1b[38;5;300mworse\x1b[38mnone", styles=True)
    assert type(line) is str and line == "badworsenone"
    tabs = clean_log_line("a\t\x1b[32mb\tc", styles=True)
    assert isinstance(tabs, StyledLine)
    wide = tabs.expandtabs()
    assert wide == "a       b       c"
    assert wide.spans == ((8, 17, SgrStyle(fg=2)),)


@given(
    st.text(
        alphabet=st.sampled_from(
            ["a", "é", "\t", "\x1b", "[", "3", "1", ";", "m", "]", "\x07", "\x9b", "0", "8"]
        ),
        max_size=60,
    )
)
def test_styles_never_change_the_text_and_spans_stay_inside(text: str) -> None:
    plain = clean_log_line(text)
    styled = clean_log_line(text, styles=True)
    assert str(styled) == plain
    at = 0
    for start, end, _style in getattr(styled, "spans", ()):
        assert at <= start < end <= len(plain)
        at = end
