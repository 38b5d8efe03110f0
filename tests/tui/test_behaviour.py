"""Behaviour of the app over the in-memory service: toasts, logs, banner, keys, degraded modes.

These need neither Redis nor Docker; the real-service flow is in ``test_integration.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, ProgressBar

from containerlease_tui.config import DockerSettings, RedisSettings
from containerlease_tui.models import EventType
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen, HelpScreen

from .fakes import DEMO_LOGS, NOW, FakeService, demo_settings, fixed_clock
from .helpers import settle

SIZE = (120, 36)


def make(**kwargs: Any) -> tuple[ContainerLeaseApp, FakeService, list[tuple[str, str]]]:
    service = FakeService(**kwargs)
    app = create_app(service.settings, service=service, reaper=False, clock=fixed_clock)
    toasts: list[tuple[str, str]] = []
    notify = app.notify

    def record(message: str, *args: Any, **kw: Any) -> None:
        toasts.append((str(message), str(kw.get("severity", "information"))))
        notify(message, *args, **kw)

    app.notify = record  # type: ignore[method-assign]
    return app, service, toasts


async def loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await settle(pilot, lambda: app.main.leases.table.row_count > 0, what="the leases")


async def follow(pilot: Pilot[Any], lease_id: str) -> None:
    app = pilot.app
    app.main.leases.table.select_lease(lease_id)
    app.main.leases.table.focus()
    await pilot.press("l")
    await settle(pilot, lambda: app.main.logs.lease is not None)


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
        assert len(logs.lines) == 10_000
        assert logs.lines[0] == "line 15000"
        assert len(logs.view.lines) <= 10_000


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
        service.store.redis_ok = True  # type: ignore[attr-defined]
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
    app = create_app(settings, user="alice", reaper=True, clock=fixed_clock)
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
    app, service, toasts = make()
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


async def test_help_lists_every_key_and_palette_has_the_actions() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(120, 50)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(str(w.render()) for w in app.screen.query(".help-keys"))
        for key in ("n ", "l ", "e ", "d ", "s ", "r ", "a ", "/ ", "? ", "q ", "p ", "f ", "w "):
            assert f"\n{key}" in f"\n{text}", key
        assert "ctrl+s" in text
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("New (n)", "Extend (e)", "Delete (d)", "Shell (s)", "Logs: Save (ctrl+s)"):
            assert title in titles


async def test_too_small_terminal_shows_a_message() -> None:
    app, _service, _ = make()
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot, lambda: app.main.has_class("-too-small"))
        assert "too small" in str(app.main.query_one("#too-small").render())
        await pilot.resize_terminal(100, 30)
        await settle(pilot, lambda: not app.main.has_class("-too-small"))
