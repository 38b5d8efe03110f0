"""Every string the app builds from data, rendered once with markup metacharacters and terminal
controls in it (issue 14, item 4): the app does not crash, shows the text literally, and writes
no control from it to the terminal.

The leases are made with ``model_copy`` (which skips validation), as if a forged record had got
past the store's checks, so the app's own defences are what is tested. What the app would write
to the terminal is rendered from its compositor after each step and checked byte by byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets._toast import Toast

from containerlease_tui.config import ImageSpec
from containerlease_tui.engine import PullProgress
from containerlease_tui.leases import ReaperStatus
from containerlease_tui.models import EventType, FailureKind, LeaseStatus
from containerlease_tui.store import ReaperBeat
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.messages import ActionDone, HealthChanged, ProvisionFinished

from .fakes import NOW, FakeService, demo_leases, demo_settings, fixed_clock
from .helpers import follow, loaded, record_toasts, settle

MARKUP = "[/b] [wip] [@click=app.quit] [b]"
CONTROLS = (
    "\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;PWNED\x07\x1bP+q544e\x1b\\\x1b_PWN\x1b\\"
    "\x1b[6n\x1b[5A\x9b31m\x9d0;PWNED\x9c\u202e\u2066\x00\x08"
)
EVIL = f"{MARKUP} {CONTROLS} end"
OWNER = f"eve{CONTROLS}[wip]"
# Nothing of CONTROLS may reach the terminal; Textual's own output is ESC [ sequences only
# (and OSC 22 for the pointer, OSC 52 on copy: the copy here is checked apart).
NEVER = re.compile(
    "\x1b\\]0;|\x1b\\]52;c;cm0g|\x1bP|\x1b_|\x1b\\^|\x1bX|\x1b\\[6n|\x1b\\[5A"
    "|[\x00\x08\x80-\x9f\u202a-\u202e\u2066-\u2069]"
)
SIZE = (150, 45)


def _terminal(app: ContainerLeaseApp) -> str:
    """What the app would write to the terminal for its whole screen now."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return str(update.render_segments(app.console))


def _toast_texts(app: ContainerLeaseApp) -> list[str]:
    """The toasts on screen, as their text reads (markup would have been consumed)."""
    return [toast.render().plain for toast in app.screen.query(Toast)]


def _hostile_service() -> FakeService:
    settings = demo_settings()
    settings.images["evil"] = ImageSpec(
        ref="busybox:1", hourly_rate="0.01", description=f"desc {EVIL}"
    )
    base = demo_leases()
    running = base[0].model_copy(
        update={
            "name": f"n{EVIL}",
            "owner": OWNER,
            "image": f"i{CONTROLS}[wip]",
            "docker_id": f"d{CONTROLS}",
            "error": EVIL,
        }
    )
    reap_failed = base[1].model_copy(
        update={
            "name": f"r{EVIL}",
            "owner": OWNER,
            "status": LeaseStatus.FAILED,
            "failure": FailureKind.REAP,
            "error": EVIL,
            "ended_at": None,
        }
    )
    lines = [f"line {n} {EVIL}" for n in range(5)]
    return FakeService(
        settings, [running, reap_failed, *base[2:]], user=OWNER, logs={running.id: lines}
    )


async def test_every_string_from_data_is_shown_literally_and_without_controls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The save path too: folders named with markup and controls (Linux allows both), so the
    # path reads ``…/x[/b]y [wip] [@click=app.quit] ESC]52…``.
    folder = tmp_path / "x[" / f"b]y [wip] [@click=app.quit] {CONTROLS[:20]}"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    service = _hostile_service()
    running, reap_failed = service.leases[0], service.leases[1]
    app = create_app(
        service.settings, service=service, reaper=False, clock=fixed_clock, all_users=True
    )
    toasts = record_toasts(app)
    outputs: list[str] = []
    leaks: list[tuple[str, list[str]]] = []  # gathered, so one run shows every defect

    async def shot(pilot: Pilot[Any], step: str) -> str:
        await pilot.pause()
        assert app.is_running, f"{step}: the app stopped"
        output = _terminal(app)
        if found := NEVER.findall(output):
            leaks.append((step, sorted(set(found))))
        outputs.append(output)
        return output

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        table = await shot(pilot, "the lease table")
        assert "[wip]" in table  # markup shown as text

        await follow(pilot, running.id)
        logs = app.main.logs
        await settle(pilot, lambda: len(logs.lines) == 5, what="the log lines")
        pane = await shot(pilot, "the log pane")
        assert "line 4 [/b] [wip] [@click=app.quit] [b]" in pane

        await pilot.press("ctrl+s")
        await settle(pilot, lambda: any("Saved" in t for t, _ in toasts), what="the save")
        await shot(pilot, "the save toast")
        assert app.is_running  # a folder named x[/b]y crashed the app (MarkupError)
        await settle(pilot, lambda: any("Saved" in t for t in _toast_texts(app)), what="toast")
        shown = _toast_texts(app)
        assert any("x[/b]y [wip] [@click=app.quit] ^[]52;" in text for text in shown), shown
        (written,) = folder.glob("containerlease-*.log")
        assert not NEVER.search(written.read_text())

        await pilot.press("f", *"[wip]", "enter")
        await shot(pilot, "a filter with markup in the title")
        await pilot.press("c")
        await settle(pilot, lambda: app.clipboard != "")
        assert not NEVER.search(app.clipboard)
        await shot(pilot, "the copy toast")

        for event, lease, detail in (
            (EventType.EXPIRING, running, ""),
            (EventType.REAPED, running, ""),
            (EventType.FAILED, running, f"detail {EVIL}"),
            (EventType.FAILED, reap_failed, f"detail {EVIL}"),
        ):
            service.emit(event, lease.id, detail, at=NOW)
        await settle(pilot, lambda: len(toasts) >= 6, what="the event toasts")
        await shot(pilot, "the event toasts")

        app.post_message(ActionDone(f"Could not restart {running.name}: {EVIL}", "error"))
        app.post_message(ProvisionFinished(None, EVIL))
        app.post_message(
            HealthChanged(
                False,
                f"redis {EVIL}",
                False,
                f"docker {EVIL}",
                ReaperStatus((ReaperBeat(host=f"reaper {EVIL}", pid=1),)),
            )
        )
        await settle(pilot, lambda: app.main.status.reaper_line is not None)
        form = app.main.form
        form.show_status_text(f"status {EVIL}")
        form.show_progress(PullProgress("layer", f"pull {EVIL}", 1, 0, 0, 0))
        banner = await shot(pilot, "the banner, the status bar and the form")
        assert "[wip]" in banner

        app.main.leases.table.select_lease(running.id)
        app.main.leases.table.focus()
        await pilot.press("d")
        await settle(pilot, lambda: app.screen is not app.main)
        await shot(pilot, "the delete dialog")
        await pilot.press("n")
        await pilot.press("e")
        await settle(pilot, lambda: app.screen is not app.main)
        await shot(pilot, "the extend dialog")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await settle(pilot, lambda: app.screen is not app.main)
        await shot(pilot, "the help screen")
        await pilot.press("escape")
        form.finish(f"finished {EVIL}")
        await shot(pilot, "the form's last word")
        assert app.is_running

    assert any("[@click=app.quit]" in out for out in outputs)
    assert leaks == [], "controls from data reached the terminal"


async def test_save_writes_what_is_shown_to_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Save takes the lines copy takes (the filtered ones), and says so; a name already taken
    (a planted link among them) is skipped, never followed."""
    from .fakes import DEMO_LOGS
    from .helpers import make

    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "containerlease-k7m2x9qa.log").symlink_to(victim)
    app, _service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "k7m2x9qa")
        logs = app.main.logs
        await settle(pilot, lambda: len(logs.lines) == len(DEMO_LOGS))
        await pilot.press("f", *"orders", "enter", "ctrl+s")
        first = tmp_path / "containerlease-k7m2x9qa-1.log"
        await settle(pilot, first.exists, what="the first save")
        await pilot.press("ctrl+s")
        second = tmp_path / "containerlease-k7m2x9qa-2.log"
        await settle(pilot, second.exists, what="the second save")
        await settle(pilot, lambda: sum("Saved" in t for t, _ in toasts) == 2)
    wanted = [line for line in DEMO_LOGS if "orders" in line]
    assert first.read_text().splitlines() == wanted == second.read_text().splitlines()
    assert victim.read_text() == "precious\n"
    saved = [t for t, _ in toasts if "Saved" in t]
    assert saved[0] == f"Saved {len(wanted)} lines (matching 'orders') to {first}"
    assert str(second) in saved[1]
