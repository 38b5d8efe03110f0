"""Issue 15: the app tells the truth (real container state, warnings that never miss, failure
reasons in sight), a refused shell never freezes it, the daily keys, and the user's keymap.

Pilot tests over the real LeaseService on the in-memory store and runtime (``fakes``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Static

from containerlease_tui.config import ReaperSettings
from containerlease_tui.engine import EngineError
from containerlease_tui.models import EventType, LeaseEvent, LeaseStatus
from containerlease_tui.policy import LeasePolicy, warning_points
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.keys import build_keymap, load_user_keymap
from containerlease_tui.tui.screens import ExtendScreen
from containerlease_tui.tui.toasts import expiry_toasts, toasts_for
from containerlease_tui.tui.widgets.lease_table import OVERDUE_NO_REAPER
from tests.tui.fakes import NOW, FakeService, demo_leases, demo_settings, fixed_clock
from tests.tui.helpers import ManualClock, footer_text, loaded, make, record_toasts, settle

SIZE = (160, 40)
RUNNING = "k7m2x9qa"  # alice's api-dev, running
FAILED = "p2q8r4tu"  # alice's broken, failed


def _docker_id(service: FakeService, lease_id: str) -> str:
    lease = next(x for x in service.leases if x.id == lease_id)
    assert lease.docker_id is not None
    return lease.docker_id


# --- item 1: a shell in a container that is not running ------------------------------------


async def test_shell_in_a_container_stopped_behind_our_back_is_refused_and_q_still_quits() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await service.runtime.stop(_docker_id(service, RUNNING))  # `docker stop` from outside
        app.main.leases.table.select_lease(RUNNING)
        app.main.leases.table.focus()
        await pilot.press("s")
        await settle(pilot, lambda: any("not running" in t for t, _ in toasts), what="refusal")
        refusal = next(t for t, _ in toasts if "not running" in t)
        assert "container 3f9c2a1b7d4e is not running (exited (0))" in refusal
        assert "press t to start it" in refusal
        assert service.runtime.shells == []  # the terminal was never handed over
        await pilot.press("q")
        await settle(pilot, lambda: not app.is_running, what="the app to quit")


async def test_a_shell_that_fails_inside_the_suspension_gives_the_terminal_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Textual's ``suspend`` resumes only when its block ends normally (no ``finally``): the
    stand-in below behaves the same, so the app must never raise inside it."""
    app, service, toasts = make()
    events: list[str] = []

    @contextlib.contextmanager
    def suspend() -> Iterator[None]:
        events.append("suspended")
        yield
        events.append("resumed")  # skipped if the block raised, as in Textual

    async def broken_shell(cid: str, cmd: object = None) -> int:
        raise EngineError("could not open a shell: the exec died")

    monkeypatch.setattr(app, "suspend", suspend)
    monkeypatch.setattr(service.runtime, "shell", broken_shell)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease(RUNNING)
        app.main.leases.table.focus()
        await pilot.press("s")
        await settle(pilot, lambda: any("Shell failed" in t for t, _ in toasts))
        assert events == ["suspended", "resumed"]
        await pilot.press("q")
        await settle(pilot, lambda: not app.is_running, what="the app to quit")


# --- item 2: the container's real state ----------------------------------------------------


async def test_a_container_killed_from_outside_shows_exited_137_and_the_owner_is_told() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        table.select_lease(RUNNING)
        service.runtime.kill(_docker_id(service, RUNNING), 137)

        def shown() -> bool:
            return str(table.get_cell(RUNNING, "status")) == "exited (137)"

        await settle(pilot, shown, what="exited (137) in the row")
        lease = next(x for x in service.leases if x.id == RUNNING)
        assert lease.status is LeaseStatus.RUNNING  # still leased (and billed)
        await settle(pilot, lambda: any("exited (137)" in t for t, _ in toasts))
        detail = str(app.main.leases.query_one("#lease-detail", Static).render())
        assert "container exited (137)" in detail
        # Started again: the row reads running again.
        await pilot.press("t")
        await settle(pilot, lambda: str(table.get_cell(RUNNING, "status")) == "running")


async def test_a_removed_container_shows_gone() -> None:
    app, service, _toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await service.runtime.remove(_docker_id(service, RUNNING))
        table = app.main.leases.table
        await settle(pilot, lambda: str(table.get_cell(RUNNING, "status")) == "container gone")


# --- item 3: expiry warnings ---------------------------------------------------------------

POINTS = [timedelta(minutes=10), timedelta(minutes=2), timedelta(seconds=30)]


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        (timedelta(minutes=10), [timedelta(minutes=2), timedelta(seconds=30)]),
        (timedelta(hours=1), POINTS),
        (timedelta(minutes=3), [timedelta(seconds=30)]),
        (timedelta(minutes=1), [timedelta(seconds=30)]),  # under 2 min still warns
        (timedelta(seconds=40), [timedelta(seconds=10)]),  # a quarter of it before the end
        (timedelta(seconds=10), []),  # nobody could react
    ],
)
def test_warning_points_are_relative_to_the_lease_and_never_at_creation(
    lifetime: timedelta, expected: list[timedelta]
) -> None:
    assert warning_points(lifetime, POINTS) == expected


def _policy() -> LeasePolicy:
    settings = demo_settings().model_copy(update={"reaper": ReaperSettings(warnings=POINTS)})
    return LeasePolicy(settings)


def test_app_warnings_never_at_creation_once_per_point_and_again_after_an_extension() -> None:
    policy = _policy()
    lease = demo_leases()[0].model_copy(
        update={"created_at": NOW, "expires_at": NOW + timedelta(minutes=10)}
    )
    shown: set[tuple[str, str]] = set()

    def at(seconds_left: float) -> list[str]:
        now = lease.expires_at - timedelta(seconds=seconds_left)
        toasts = expiry_toasts([lease], "alice", now, policy, shown)
        shown.update(t.once for t in toasts if t.once)
        return [t.text for t in toasts]

    assert at(600) == []  # created: no "expires in 10 min"
    assert at(300) == []
    assert at(120) == ["api-dev expires in 2 min — press e to extend"]
    assert at(100) == []  # once per point
    assert at(30) == ["api-dev expires in 30 s — press e to extend"]
    # Extended by 5 min: a new deadline, every point re-armed.
    lease = lease.model_copy(update={"expires_at": lease.expires_at + timedelta(minutes=5)})
    assert at(120) == ["api-dev expires in 2 min — press e to extend"]
    # The reaper's event for the same point does not toast again; bob's never toast.
    event = LeaseEvent(
        id="1-0",
        type=EventType.EXPIRING,
        lease=lease.id,
        owner="alice",
        at=lease.expires_at - timedelta(seconds=119),
        detail="expires in 2 min",
    )
    assert toasts_for([event], {lease.id: lease}, "alice", shown, policy) == []
    assert expiry_toasts([lease], "bob", lease.expires_at, policy) == []


async def test_opened_after_a_warning_point_it_warns_at_once_and_colours_the_countdown() -> None:
    # pg-test has 2 min 5 s left of an hour: past its 10 min point (amber), not its 2 min one.
    clock = ManualClock(NOW)
    service = FakeService(reaper_alive=False)
    app = create_app(service.settings, service=service, reaper=False, clock=clock, all_users=True)
    toasts = record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await settle(pilot, lambda: any("pg-test expires in 2 min" in t for t, _ in toasts))
        table = app.main.leases.table
        soon = table.get_component_rich_style("lease-table--soon", partial=True)
        urgent = table.get_component_rich_style("lease-table--urgent", partial=True)
        assert table.get_cell("b4n8c3rd", "left").style == soon
        clock.advance(10)
        await settle(pilot, lambda: table.get_cell("b4n8c3rd", "left").style == urgent)
        # Past the deadline with no reaper: it says so, in red, instead of "0 s" forever.
        clock.advance(200)
        await settle(pilot, lambda: str(table.get_cell("b4n8c3rd", "left")) == OVERDUE_NO_REAPER)
        assert table.get_cell("b4n8c3rd", "left").style == urgent
        assert "no reaper running (--no-reaper)" in app.main.status.reaper_text


# --- item 4: failure reasons ---------------------------------------------------------------


async def test_a_failed_lease_shows_its_reason_under_the_table_and_in_the_log_pane() -> None:
    app, _service, _toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease(FAILED)
        detail = app.main.leases.query_one("#lease-detail", Static)
        await settle(pilot, lambda: "could not be pulled" in str(detail.render()))
        assert "broken failed: image python:3.12 could not be pulled" in str(detail.render())
        app.main.leases.table.focus()
        await pilot.press("l")
        title = app.main.logs.query_one("#log-title", Static)
        await settle(pilot, lambda: "no logs: provision failed" in str(title.render()))
        assert "following" not in str(title.render())


# --- item 7: parity and polish -------------------------------------------------------------


async def test_stop_and_start_from_the_app() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease(RUNNING)
        app.main.leases.table.focus()

        def status() -> LeaseStatus:
            return next(x for x in service.leases if x.id == RUNNING).status

        await pilot.press("t")
        await settle(pilot, lambda: status() is LeaseStatus.STOPPED, what="stopped")
        await settle(pilot, lambda: any("Stopped api-dev" in t for t, _ in toasts))
        await pilot.press("t")
        await settle(pilot, lambda: status() is LeaseStatus.RUNNING, what="started")


async def test_vi_keys_sort_and_the_starting_scope() -> None:
    service = FakeService()
    app = create_app(service.settings, service=service, reaper=False, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pane = app.main.leases
        assert pane.show_all is False  # as `containerlease ls`: mine first
        assert {x.owner for x in pane.table.shown.values()} == {"alice"}
        pane.show_all = True
        await pilot.pause()
        table = pane.table
        table.focus()
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g", "j")
        assert table.cursor_row == 1
        await pilot.press("k")
        assert table.cursor_row == 0
        await pilot.press("o")  # by time left: the soonest deadline first
        await settle(pilot, lambda: pane.sort_name == "time left")
        first = table.selected
        table.move_cursor(row=0)
        await pilot.pause()
        assert table.selected is not None and table.selected.id == "b4n8c3rd", first


async def test_the_extend_dialog_shows_the_added_cost() -> None:
    app, _service, _toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.main.leases.table.select_lease(RUNNING)
        app.main.leases.table.focus()
        await pilot.press("e")
        await settle(pilot, lambda: isinstance(app.screen, ExtendScreen))
        await pilot.press(*"2h")
        result = app.screen.query_one("#extend-result", Static)
        await settle(pilot, lambda: "adds $0.08" in str(result.render()))


# --- item 8: the keymap --------------------------------------------------------------------


def test_keymap_conflicts_name_both_bindings_and_the_rest_applies() -> None:
    keymap = build_keymap(("config [keymap]", {"extend": "ctrl+e", "shell": "d", "nope": "x"}))
    assert keymap.keys == {"extend": "ctrl+e"}
    assert any("'d' is bound to both delete and shell" in p for p in keymap.problems)
    assert any("unknown binding 'nope'" in p for p in keymap.problems)
    assert all("\n" not in p for p in keymap.problems)
    assert build_keymap(("x", {"quit": "ctrl+c"})).problems == [
        "keymap (x): quit = 'ctrl+c': that key is reserved"
    ]
    assert build_keymap(("x", {"quit": "ctrl+ e"})).keys == {}


def test_a_broken_keymap_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "keymap.toml").write_text("extend = [")
    keymap = load_user_keymap(tmp_path, {"shell": "x"})
    assert keymap.keys == {"shell": "x"}
    assert len(keymap.problems) == 1 and "cannot read" in keymap.problems[0]
    (tmp_path / "keymap.toml").write_text('[keymap]\nextend = "ctrl+e"\n')
    assert load_user_keymap(tmp_path, {"extend": "x"}).keys == {"extend": "ctrl+e"}


async def test_the_users_keys_work_and_show_in_footer_help_and_palette(tmp_path: Path) -> None:
    (tmp_path / "keymap.toml").write_text('extend = "ctrl+e"\nshell = "d"\n')
    service = FakeService()
    app = create_app(
        service.settings,
        service=service,
        reaper=False,
        clock=fixed_clock,
        keymap_dir=tmp_path,
        all_users=True,
    )
    toasts = record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await settle(pilot, lambda: any("bound to both delete and shell" in t for t, _ in toasts))
        table = app.main.leases.table
        table.select_lease(RUNNING)
        table.focus()
        # The footer recomposes after the focus moves: wait for it, not for one pause.
        await settle(pilot, lambda: "^e Extend" in footer_text(app), what="the footer's keys")
        help_keys = {keys for _, rows in app.help_sections() for keys, _what in rows}
        assert "ctrl+e" in help_keys
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Extend (ctrl+e)" in commands
        await pilot.press("ctrl+e")
        await settle(pilot, lambda: isinstance(app.screen, ExtendScreen))


async def test_the_chosen_theme_is_kept_across_restarts(tmp_path: Path) -> None:
    def app_once() -> ContainerLeaseApp:
        service = FakeService()
        return create_app(
            service.settings, service=service, reaper=False, clock=fixed_clock, state_dir=tmp_path
        )

    first = app_once()
    async with first.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        first.theme = "nord"
        await settle(pilot, lambda: (tmp_path / "app.json").exists(), what="the saved theme")
    second = app_once()
    assert second.theme == "nord"
    (tmp_path / "app.json").write_text("{not json")
    assert app_once().theme != "nord"  # a broken file is ignored, not a crash


async def test_an_oom_killed_container_says_so_in_the_row_detail_and_toast() -> None:
    app, service, toasts = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        table.select_lease(RUNNING)
        service.runtime.kill(_docker_id(service, RUNNING), 137, oom=True)

        def shown() -> bool:
            return str(table.get_cell(RUNNING, "status")) == "OOM-killed (137)"

        await settle(pilot, shown, what="OOM-killed (137) in the row")
        await settle(pilot, lambda: any("OOM-killed (137)" in t for t, _ in toasts))
        detail = str(app.main.leases.query_one("#lease-detail", Static).render())
        assert "container OOM-killed (137)" in detail
        await pilot.press("t")  # started again: no longer OOM-killed
        await settle(pilot, lambda: str(table.get_cell(RUNNING, "status")) == "running")
