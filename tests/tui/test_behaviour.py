"""Behaviour of the app over the in-memory service: toasts, logs, banner, keys, degraded modes.

These need neither Redis nor Docker; the real-service flow is in ``test_integration.py``.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, OptionList, ProgressBar, Select

from containerlease_tui.config import DockerSettings, RedisSettings
from containerlease_tui.logflow import SkipMarker, is_marker
from containerlease_tui.models import EventType, FailureKind, LeaseStatus
from containerlease_tui.tui import create_app
from containerlease_tui.tui.formatting import time_left_cell
from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen
from containerlease_tui.tui.widgets import log_pane

from .fakes import DEMO_LOGS, NOW, demo_settings, fixed_clock
from .helpers import ManualClock, follow, loaded, make, screen_lines, settle

SIZE = (120, 36)


# --- toasts from the event stream ------------------------------------------------------------


async def test_expiring_toast_for_my_lease_only() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pg = next(x for x in service.leases if x.name == "pg-test")
        service.emit(EventType.EXPIRING, pg.id, at=pg.expires_at - (pg.expires_at - NOW))
        service.emit(EventType.EXPIRING, "w6t5y2pe")  # bob's: not my business
        await settle(pilot, lambda: any("expires in" in t for t, _ in toasts))
        await pilot.pause()
        expiring = [t for t, _ in toasts if "expires in" in t]
        assert expiring == ["pg-test expires in 2 min — press e to extend"]


async def test_reaped_and_failed_toasts_once() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        service.emit(EventType.EXPIRED, "k7m2x9qa")
        service.emit(EventType.REAPED, "k7m2x9qa")
        service.emit(EventType.FAILED, "p2q8r4tu", detail="image python:3.12 could not be pulled")
        await settle(pilot, lambda: len(toasts) >= 2)
        await pilot.pause()
        assert [t for t, _ in toasts if "reaped" in t] == ["api-dev reaped: its lease expired"]
        assert (
            "broken: provision failed: image python:3.12 could not be pulled",
            "error",
        ) in toasts


# --- the log pane ----------------------------------------------------------------------------


async def test_logs_are_bounded_and_keep_the_newest() -> None:
    lines = [f"line {n}" for n in range(25_000)]
    app, _service, _ = make(logs={"k7m2x9qa": lines})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "k7m2x9qa")
        logs = app.main.logs
        await settle(pilot, lambda: logs.lines and logs.lines[-1] == "line 24999")
        assert len(logs.lines) <= 10_000
        assert len(logs.view.lines) <= 10_000
        # Whatever was dropped on the way is marked, and what is kept is in order.
        entries = list(logs.lines)
        first = next(i for i, line in enumerate(entries) if not is_marker(line))
        kept = [int(line.split()[1]) for line in entries if not is_marker(line)]
        assert kept == sorted(kept) and kept[-1] == 24_999
        gaps = sum(x.skipped for x in entries[first:] if isinstance(x, SkipMarker))
        assert kept[-1] - kept[0] + 1 == len(kept) + gaps


async def test_pause_resume_filter_wrap() -> None:
    app, service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "k7m2x9qa")
        logs = app.main.logs
        await settle(pilot, lambda: len(logs.lines) == len(DEMO_LOGS))
        shown = len(logs.view.lines)

        await pilot.press("p")
        assert logs.paused
        service.feed("k7m2x9qa", "late 1", "late 2", "late 3")
        await settle(pilot, lambda: logs.unseen == 3)
        assert len(logs.view.lines) == shown  # nothing written while paused
        assert "paused (3 new" in str(logs.query_one("#log-title").render())
        await pilot.press("p")
        await settle(pilot, lambda: len(logs.view.lines) == shown + 3)

        await pilot.press("f", *"error|warn")
        await settle(pilot, lambda: len(logs.view.lines) == 2)
        assert "filter error|warn" in str(logs.query_one("#log-title").render())
        await pilot.press("enter")
        await pilot.press("w")
        assert logs.wrap and logs.view.wrap
        await pilot.press("w")
        assert not logs.wrap


async def test_save_and_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app, _service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "k7m2x9qa")
        logs = app.main.logs
        await settle(pilot, lambda: len(logs.lines) == len(DEMO_LOGS))
        await pilot.press("ctrl+s")
        saved = tmp_path / "containerlease-k7m2x9qa.log"
        await settle(pilot, saved.exists)
        assert saved.read_text().splitlines() == DEMO_LOGS
        assert any(str(saved) in t for t, _ in toasts)

        await pilot.press("f", *"orders", "enter", "c")
        await settle(pilot, lambda: app.clipboard != "")
        assert app.clipboard.splitlines() == [x for x in DEMO_LOGS if "orders" in x]


async def test_logs_of_a_lease_without_container_wait_for_it() -> None:
    app, _service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "w6t5y2pe")  # bob's pulling lease: no container yet
        assert "waiting for its container" in str(app.main.logs.query_one("#log-title").render())


# --- the banner and degraded modes -----------------------------------------------------------


async def test_redis_down_then_recovers_by_itself() -> None:
    app, service, _ = make(redis_ok=False)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.main.query_one("#banner")
        await settle(pilot, lambda: banner.has_class("-visible"))
        assert "Redis is down" in str(banner.render())
        assert app.main.leases.table.row_count == 0
        service.memory.down = None
        await settle(pilot, lambda: not banner.has_class("-visible"), within=15)
        await settle(pilot, lambda: app.main.leases.table.row_count == 6)
        assert app.main.status.redis_ok is True


async def test_docker_down_banner() -> None:
    app, _service, _ = make(docker_ok=False)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.main.query_one("#banner")
        await settle(pilot, lambda: banner.has_class("-visible"))
        assert "Docker is down" in str(banner.render())
        await loaded(pilot)  # leases still show: only Docker is down


async def test_nothing_reachable_opens_in_a_worker_and_shows_the_banner() -> None:
    settings = demo_settings().model_copy(
        update={
            "redis": RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=1.0),
            "docker": DockerSettings(url="unix:///nonexistent/docker.sock", timeout=1.0),
        }
    )
    app = create_app(settings, user="alice", reaper=True, clock=fixed_clock, all_users=True)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.main.query_one("#banner")
        await settle(
            pilot,
            lambda: (
                "Redis is down" in str(banner.render()) and "Docker is down" in str(banner.render())
            ),
            within=20,
        )
        assert app.service is not None
        assert app.main.status.user == "alice"
        await pilot.press("q")
    assert app.return_code == 0


async def test_errors_from_the_service_become_toasts() -> None:
    app, service, toasts = make()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    service.extend = broken  # type: ignore[method-assign]
    service.restart = broken  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease("k7m2x9qa")
        await pilot.press("r")
        await settle(pilot, lambda: ("Could not restart api-dev: boom", "error") in toasts)
        await pilot.press("e")
        await settle(pilot, lambda: isinstance(app.screen, ExtendScreen))
        await pilot.press(*"30m", "enter")
        await settle(pilot, lambda: ("Could not extend api-dev: boom", "error") in toasts)
        await pilot.press("s")  # no terminal to hand over in a headless test
        await settle(pilot, lambda: any(t.startswith("Shell failed") for t, _ in toasts))
        assert app.is_running


# --- modals, keys, palette -------------------------------------------------------------------


async def test_extend_modal_validates_before_sending() -> None:
    app, _service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease("k7m2x9qa")
        await pilot.press("e")
        await settle(pilot, lambda: isinstance(app.screen, ExtendScreen))
        screen = app.screen
        await pilot.press(*"9h")
        await pilot.pause()
        assert "allowed 5m to 8h" in str(screen.query_one("#extend-result").render())
        assert screen.query_one("#ok", Button).disabled
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, ExtendScreen))


async def test_delete_can_be_cancelled() -> None:
    app, service, _ = make()
    calls: list[str] = []

    async def release(ref: str) -> Any:
        calls.append(ref)
        raise AssertionError("must not be called")

    service.release = release  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease("k7m2x9qa")
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert calls == []


async def test_scope_and_text_filter() -> None:
    app, _service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        assert table.row_count == 6
        await pilot.press("a")
        await settle(pilot, lambda: table.row_count == 3)  # alice's own
        await pilot.press("a", "slash", *"ubuntu")
        await settle(pilot, lambda: table.row_count == 2)
        await pilot.press("escape")
        await settle(pilot, lambda: table.row_count == 6)
        totals = str(app.main.leases.query_one("#lease-totals").render())
        assert "6 leases" in totals and "4 active" in totals and "0.25/h" in totals


async def test_form_estimate_and_validation() -> None:
    app, _service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = app.main.form
        await pilot.press("n")
        await pilot.click("#duration")
        await pilot.press(*"1h30m")
        await settle(pilot, lambda: "0.06" in form.estimate)
        assert form.error == ""
        await pilot.click("#preset-4h")
        await settle(pilot, lambda: "0.16" in form.estimate)
        await pilot.click("#cpus")
        await pilot.press(*"64")
        await settle(pilot, lambda: "cpus must be between" in form.error)
        assert form.query_one("#cpus", Input).has_class("-invalid")
        assert form.query_one("#provision", Button).disabled


async def test_provision_through_the_form_shows_pull_progress() -> None:
    # The form's default image (ubuntu) is not local here: the real service only pulls then.
    app, service, toasts = make(present={"alpine:3.20"})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = app.main.form
        await pilot.press("n")
        await pilot.click("#name")
        await pilot.press(*"fresh", "enter")
        await settle(pilot, lambda: form.has_class("-pulling"), what="the pull to start")
        await settle(pilot, lambda: "layers 1/2" in str(form.query_one("#pull-info").render()))
        assert "140 Bytes / 200 Bytes" in str(form.query_one("#pull-info").render())
        assert form.query_one("#pull-bar", ProgressBar).percentage == pytest.approx(0.7)
        new = next(x for x in service.leases if x.name == "fresh")
        assert app.main.leases.leases[new.id].status.value == "pulling"
        assert form.query_one("#name", Input).value == ""

        service.pull_gate.set()
        await settle(pilot, lambda: not form.has_class("-pulling"))
        await settle(pilot, lambda: app.main.leases.leases[new.id].status.value == "running")
        assert ("fresh (" + new.id + ") is running", "information") in toasts


async def test_too_small_terminal_shows_a_message() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot, lambda: app.main.has_class("-too-small"))
        assert "too small" in str(app.main.query_one("#too-small").render())
        await pilot.resize_terminal(100, 30)
        await settle(pilot, lambda: not app.main.has_class("-too-small"))


# --- time passing ----------------------------------------------------------------------------


async def test_countdown_moves_every_second() -> None:
    clock = ManualClock(NOW)
    app, _service, _ = make(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table

        def left() -> str:
            return str(table.get_cell("b4n8c3rd", "left"))

        await settle(pilot, lambda: left() == "2 min 5 s")
        clock.advance(1)
        await settle(pilot, lambda: left() == "2 min 4 s", within=2.5, what="the next tick")
        clock.advance(1)
        await settle(pilot, lambda: left() == "2 min 3 s", within=2.5, what="the tick after")


async def test_a_tick_updates_only_the_cells_whose_text_changed() -> None:
    """Issue 19: an idle table repaints a few cells a second, not every countdown and cost."""
    clock = ManualClock(NOW)
    app, _service, _ = make(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pane = app.main.leases
        table = pane.table
        await pilot.pause()
        updated: list[tuple[str, str]] = []
        original = table.set_ticking_cell

        def spy(lease_id: str, key: str, text: str) -> None:
            updated.append((lease_id, key))
            original(lease_id, key, text)

        def whole(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("a tick must not update whole rows")

        table.set_ticking_cell = spy  # type: ignore[method-assign]
        table.update_cell = whole  # type: ignore[method-assign]
        pane.tick(clock.now)  # nothing moved
        assert updated == []
        # the demo deadlines are whole minutes from NOW: step away from the minute boundary
        pane.tick(clock.now + timedelta(seconds=10))
        updated.clear()
        later = clock.now + timedelta(seconds=11)
        pane.tick(later)
        active = [lease for lease in table.shown.values() if lease.status.is_active]
        short = [lease.id for lease in active if lease.seconds_left(later) < 3600]
        assert set(updated) >= {(lease_id, "left") for lease_id in short}
        assert {column for _, column in updated} <= {"left", "cost"}
        assert len(updated) == len(set(updated))
        assert all(lease_id in {x.id for x in active} for lease_id, _ in updated)
        # a lease with hours left shows whole minutes: a second later its cell is untouched
        long = [x.id for x in active if x.seconds_left(later) > 3600 + 60]
        assert not {(lease_id, "left") for lease_id in long} & set(updated)
        # and the cell shows the new text
        lease = active[0]
        assert str(table.get_cell(lease.id, "left")) == time_left_cell(lease, later)


async def test_closed_leases_age_out_of_the_table() -> None:
    clock = ManualClock(NOW)
    app, _service, _ = make(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        assert table.row_count == 6
        clock.advance(40 * 60)  # old-box ended 60 min ago: still within the hour
        await pilot.pause(1.2)
        assert "e5f6g7hj" in table.shown
        clock.advance(61)  # ... and now past it, with no event and no key press
        await settle(pilot, lambda: table.row_count == 5, within=2.5, what="old-box to age out")
        assert "e5f6g7hj" not in table.shown and "p2q8r4tu" in table.shown
        assert "5 leases" in str(app.main.leases.query_one("#lease-totals").render())


# --- narrow terminals ------------------------------------------------------------------------


async def test_narrow_terminal_folds_the_form_away_until_n() -> None:
    app, service, _ = make(present={"alpine:3.20"})  # ubuntu is pulled: the form stays open
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        main, form, table = app.main, app.main.form, app.main.leases.table
        assert not form.display
        assert table.size.width >= 78  # the whole width for the table
        await pilot.press("n")
        await settle(pilot, lambda: form.display and form.query_one("#image").has_focus)
        await pilot.press("escape")
        await settle(pilot, lambda: not form.display and table.has_focus)

        # Provision from the narrow form: it folds away once the lease runs.
        await pilot.press("n")
        await settle(pilot, lambda: form.query_one("#image").has_focus)
        await pilot.click("#name")
        await pilot.press(*"slim", "enter")
        await settle(pilot, lambda: form.has_class("-pulling"))
        assert form.display  # open while it pulls: the progress bar is there
        service.pull_gate.set()
        await settle(pilot, lambda: not main.form_open and not form.display and table.has_focus)
        new = next(x for x in service.leases if x.name == "slim")
        assert table.selected is not None and table.selected.id == new.id

        await pilot.resize_terminal(120, 36)  # wide: the form is always there
        await settle(pilot, lambda: form.display)
        await pilot.click("#name")
        await pilot.resize_terminal(80, 24)  # folded away under the cursor: the table has it
        await settle(pilot, lambda: not form.display and table.has_focus)


# --- the provision form ----------------------------------------------------------------------


def _option_texts(form: Any) -> list[str]:
    options = form.query_one("#image", Select).query_one(OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_image_options_show_description_and_presence_and_refresh_after_a_pull() -> None:
    app, service, _ = make()
    calls: list[int] = []
    images = service.images

    async def counted() -> Any:
        calls.append(1)
        return await images()

    service.images = counted  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = app.main.form
        await settle(pilot, lambda: all(v is not None for v in form._present.values()))
        texts = _option_texts(form)
        assert texts[0] == "ubuntu  $0.04/h  local\nUbuntu 24.04 LTS"
        assert texts[2] == "python  $0.12/h  will pull\nPython 3.12 with Jupyter"
        picked = form.query_one("#image", Select).query_one("SelectCurrent")
        assert "ubuntu  $0.04/h  local" in str(picked.query_one("#label").render())

        form.query_one("#image", Select).value = "python"
        await pilot.click("#name")
        await pilot.press(*"nb", "enter")
        await settle(pilot, lambda: form.has_class("-pulling"))
        before = len(calls)
        service.engine.present.add("python:3.12")  # type: ignore[attr-defined]
        service.pull_gate.set()
        await settle(pilot, lambda: len(calls) > before, what="the images to be reloaded")
        await settle(pilot, lambda: _option_texts(form)[2].startswith("python  $0.12/h  local"))
        assert form.image == "python"  # the choice survives the refresh


async def test_cpu_and_memory_ranges_are_always_shown() -> None:
    app, _service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = app.main.form
        cpus_hint = form.query_one("#cpus-hint")
        memory_hint = form.query_one("#memory-hint")
        assert str(cpus_hint.render()) == "allowed 0.01 to 4"
        assert str(memory_hint.render()) == "allowed 6m to 8g"
        assert cpus_hint.display and memory_hint.display and form.error == ""
        await pilot.click("#memory")
        await pilot.press(*"9g")
        await settle(pilot, lambda: "memory must be at most 8g" in form.error)
        assert memory_hint.has_class("-invalid") and not cpus_hint.has_class("-invalid")


# --- toasts and the status bar ---------------------------------------------------------------


async def test_a_reap_failure_is_not_called_a_provision_failure() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        reason = "the Docker engine is unreachable"
        service.leases = [
            x.transition(
                LeaseStatus.FAILED, error=f"reap failed: {reason}", failure=FailureKind.REAP
            )
            if x.id == "k7m2x9qa"
            else x
            for x in service.leases
        ]
        service.emit(EventType.FAILED, "k7m2x9qa", detail=reason)
        await settle(pilot, lambda: any("could not be reaped" in t for t, _ in toasts))
        assert (f"api-dev could not be reaped: {reason} (the reaper retries)", "error") in toasts
        assert not any("provision failed" in t for t, _ in toasts)


@pytest.mark.parametrize(
    ("width", "alive", "shown"),
    [
        (120, True, "● reaper alive on devbox (pid 4242, no pass yet)"),
        (80, True, "● reaper alive on devbox "),
        (140, False, "✖ no reaper running (--no-reaper) — expired leases stay until one runs"),
        (80, False, "✖ no reaper running "),
    ],
)
async def test_status_bar_says_which_reaper_is_alive(width: int, alive: bool, shown: str) -> None:
    app, _service, _ = make(reaper_alive=alive)
    async with app.run_test(size=(width, 30)) as pilot:
        await loaded(pilot)
        status = app.main.status
        await settle(pilot, lambda: status.reaper_line is not None)
        await pilot.pause()
        row = screen_lines(app)[-2]
        assert shown in row, row
        assert row.rstrip().endswith("│ alice │ 12:00:00 UTC")  # the clock is never cut off
        full = (
            "reaper alive on devbox (pid 4242, no pass yet)"
            if alive
            else "no reaper running (--no-reaper) — expired leases stay until one runs"
        )
        assert status.query_one("#status-reaper").tooltip == full


async def test_save_writes_the_file_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    threads: list[bool] = []
    write_new = log_pane.write_new

    def recording(*args: Any, **kwargs: Any) -> Path:
        threads.append(threading.current_thread() is threading.main_thread())
        return write_new(*args, **kwargs)

    monkeypatch.setattr(log_pane, "write_new", recording)
    app, _service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await follow(pilot, "k7m2x9qa")
        await settle(pilot, lambda: len(app.main.logs.lines) == len(DEMO_LOGS))
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: any(t.startswith("Saved 12 lines") for t, _ in toasts))
        assert threads == [False]  # written once, not on the UI thread
        assert (tmp_path / "containerlease-k7m2x9qa.log").read_text().splitlines() == DEMO_LOGS
