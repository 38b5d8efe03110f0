"""Ports and health in the app: where a lease's ports are published (and the ``ssh -L`` to reach
them) under the table, ``y`` copying ``host:port`` through OSC 52, and a running container's
health check verdict in its status cell.

Pilot tests over the real LeaseService on the in-memory store and runtime (``fakes``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static
from textual.widgets.data_table import ColumnKey

from containerlease_tui.daemon import wire
from containerlease_tui.display import first_published, format_ports, ssh_forward
from containerlease_tui.leases import ContainerState
from containerlease_tui.models import Lease
from containerlease_tui.tui import ContainerLeaseApp, create_app
from containerlease_tui.tui.screens import HelpScreen
from tests.tui.fakes import FakeService, demo_leases, fixed_clock
from tests.tui.helpers import Toasts, loaded, record_toasts, record_writes, settle

SIZE = (160, 40)
RUNNING = "k7m2x9qa"  # alice's api-dev, running, on devbox
PORTS = {"8080/tcp": "127.0.0.1:49153", "53/udp": "127.0.0.1:49154"}


def _leases(lease_id: str, **changes: Any) -> list[Lease]:
    """The demo leases, one changed (published ports, another host)."""
    return [
        lease.model_copy(update=changes) if lease.id == lease_id else lease
        for lease in demo_leases()
    ]


def _make(
    keymap_dir: Path | None = None, lease_id: str = RUNNING, **changes: Any
) -> tuple[ContainerLeaseApp, FakeService, Toasts]:
    service = FakeService(leases=_leases(lease_id, **changes))
    app = create_app(
        service.settings,
        service=service,
        reaper=False,
        clock=fixed_clock,
        all_users=True,
        keymap_dir=keymap_dir,
    )
    return app, service, record_toasts(app)


def _docker_id(service: FakeService, lease_id: str) -> str:
    lease = next(x for x in service.leases if x.id == lease_id)
    assert lease.docker_id is not None
    return lease.docker_id


def _detail(app: ContainerLeaseApp) -> str:
    detail = app.main.leases.query_one("#lease-detail", Static)
    return str(detail.render()) if detail.display else ""


def _osc52(text: str) -> str:
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\a"


async def _select(pilot: Pilot[Any], lease_id: str) -> None:
    app = pilot.app
    assert isinstance(app, ContainerLeaseApp)
    await loaded(pilot)
    app.main.leases.table.select_lease(lease_id)
    app.main.leases.table.focus()


# --- the formatting helpers (shared with the CLI) -------------------------------------------


def test_ports_read_as_mappings_and_the_ssh_line_forwards_the_tcp_ones() -> None:
    assert format_ports(PORTS) == "8080/tcp → 127.0.0.1:49153, 53/udp → 127.0.0.1:49154"
    assert ssh_forward(PORTS, "devbox") == "ssh -L 49153:127.0.0.1:49153 devbox"  # no UDP
    assert first_published(PORTS) == ("8080/tcp", "127.0.0.1:49153")
    # Published on every address: reached through the box's loopback.
    both = {"80/tcp": "0.0.0.0:32768", "81/tcp": "[::]:32769"}
    assert ssh_forward(both, "box.example") == (
        "ssh -L 32768:127.0.0.1:32768 -L 32769:[::1]:32769 box.example"
    )
    # Not published yet (a stopped container): nothing to show, copy or forward.
    assert format_ports({"8080/tcp": None}) is None
    assert first_published({"8080/tcp": None}) is None
    assert ssh_forward({"8080/tcp": None}, "devbox") is None
    assert ssh_forward({"53/udp": "127.0.0.1:5353"}, "devbox") is None


def test_hostile_ports_and_hosts_are_made_safe() -> None:
    # The model validates the mapping; a record that got past it still shows no controls.
    forged = {"8080/tcp": "127.0.0.1:49153\x1b]52;c;ZXZpbA==\x07\n"}
    shown = format_ports(forged)
    assert shown is not None and "\x1b" not in shown and "\x07" not in shown
    assert "\n" not in shown and "^[" in shown
    first = first_published(forged)
    assert first is not None and "\x1b" not in first[1]
    # A host that is not a plain host name never goes into a command someone pastes.
    assert ssh_forward(PORTS, "devbox; rm -rf ~") == "ssh -L 49153:127.0.0.1:49153 HOST"
    assert ssh_forward(PORTS, "\x1b[2Jdevbox") == "ssh -L 49153:127.0.0.1:49153 HOST"
    assert ssh_forward(PORTS, None) == "ssh -L 49153:127.0.0.1:49153 HOST"


# --- item 1: the detail line --------------------------------------------------------------


async def test_the_detail_line_shows_the_ports_and_the_ssh_line() -> None:
    app, _service, _ = _make(ports=PORTS)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        await settle(pilot, lambda: "ports" in _detail(app), what="the ports line")
        assert _detail(app) == (
            "ports 8080/tcp → 127.0.0.1:49153, 53/udp → 127.0.0.1:49154  ·  "
            "from elsewhere: ssh -L 49153:127.0.0.1:49153 devbox"
        )
        # Another lease (no ports, nothing wrong): no detail line.
        app.main.leases.table.select_lease("b4n8c3rd")
        await settle(pilot, lambda: _detail(app) == "", what="no detail line")


async def test_trouble_comes_first_in_the_error_colour_then_the_ports() -> None:
    app, service, _ = _make(ports=PORTS)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        service.runtime.set_health(_docker_id(service, RUNNING), "unhealthy")
        await settle(pilot, lambda: "unhealthy" in _detail(app), what="the trouble line")
        trouble, ports = _detail(app).split("\n")
        assert trouble == "api-dev: container unhealthy — its health check fails"
        assert ports.startswith("ports 8080/tcp → 127.0.0.1:49153")
        pane = app.main.leases
        lease = pane.table.selected
        assert lease is not None
        first, second = pane.detail_lines(lease)
        assert [span.style for span in first.spans] == ["$error"]
        assert "$error" not in {str(span.style) for span in second.spans}
        # The container dies: its ports are gone with it, the reason stays.
        service.runtime.kill(_docker_id(service, RUNNING), 137)
        await settle(pilot, lambda: "exited (137)" in _detail(app), what="exited (137)")
        assert _detail(app) == (
            "api-dev: container exited (137) — the lease is still open and billed"
        )


async def test_a_hostile_host_is_not_in_the_ssh_line() -> None:
    app, _service, _ = _make(ports=PORTS, host="evil\x1b]0;pwned\x07 && curl x|sh")
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        await settle(pilot, lambda: "ssh -L" in _detail(app), what="the ssh line")
        assert _detail(app).endswith("ssh -L 49153:127.0.0.1:49153 HOST")
        assert "\x1b" not in _detail(app)


# --- item 2: y copies host:port -----------------------------------------------------------


async def test_y_copies_the_first_published_port_with_osc52() -> None:
    app, _service, toasts = _make(ports=PORTS)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        written = record_writes(app)
        await pilot.press("y")
        sequence = _osc52("127.0.0.1:49153")
        await settle(pilot, lambda: sequence in "".join(written), what="the OSC 52 sequence")
        assert app.clipboard == "127.0.0.1:49153"
        assert ("Copied 127.0.0.1:49153 — port 8080/tcp of api-dev (k7m2x9qa)", "information") in (
            toasts
        )


async def test_y_without_a_published_port_says_so_and_copies_nothing() -> None:
    app, _service, toasts = _make(ports={"8080/tcp": None})  # not published (yet)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        written = record_writes(app)
        await pilot.press("y")
        wanted = ("api-dev (k7m2x9qa): no published port", "warning")
        await settle(pilot, lambda: wanted in toasts, what="the no-port toast")
        assert app.clipboard == ""
        assert "\x1b]52;" not in "".join(written)


async def test_y_on_a_stopped_lease_copies_no_stale_port() -> None:
    # carol's stopped scratch, whose record still says where it was published.
    stale = {"22/tcp": "127.0.0.1:40000"}
    app, _service, toasts = _make(lease_id="h3j9v7sf", ports=stale)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, "h3j9v7sf")
        lease = app.main.leases.table.selected
        assert lease is not None and lease.ports == stale
        await pilot.press("y")
        wanted = ("scratch (h3j9v7sf): no published port", "warning")
        await settle(pilot, lambda: wanted in toasts, what="the no-port toast")
        assert app.clipboard == ""
        assert "ports" not in _detail(app)


async def test_copy_port_from_a_user_keymap(tmp_path: Path) -> None:
    (tmp_path / "keymap.toml").write_text('copy_port = "ctrl+y"\n')
    app, _service, toasts = _make(keymap_dir=tmp_path, ports=PORTS)
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        assert app.keymap.problems == []
        written = record_writes(app)
        await pilot.press("y")  # no longer the key
        await pilot.pause()
        assert app.clipboard == ""
        await pilot.press("ctrl+y")
        sequence = _osc52("127.0.0.1:49153")
        await settle(pilot, lambda: sequence in "".join(written), what="the OSC 52 sequence")
        assert any(text.startswith("Copied 127.0.0.1:49153") for text, _ in toasts)
        # The help screen and the palette name the user's key.
        help_rows = {keys: what for _, rows in app.help_sections() for keys, what in rows}
        assert help_rows["ctrl+y"] == "Copy the lease's host:port (OSC 52)"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Copy port (ctrl+y)" in titles


async def test_help_and_palette_list_y() -> None:
    app, _service, _ = _make(ports=PORTS)
    async with app.run_test(size=(120, 50)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(str(w.render()) for w in app.screen.query(".help-keys"))
        assert "\ny  " in f"\n{text}" and "Copy the lease's host:port (OSC 52)" in text
        await pilot.press("escape")
        assert "Copy port (y)" in [c.title for c in app.get_system_commands(app.screen)]


# --- item 3: health in the status cell ------------------------------------------------------


def test_the_container_state_view_carries_health_over_the_wire() -> None:
    states = {RUNNING: ContainerState("running", health="unhealthy")}
    assert wire.STATES.validate_python(wire.dump(wire.STATES, states)) == states


async def test_health_colours_the_status_cell_and_names_the_verdict() -> None:
    app, service, _ = _make()
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        table = app.main.leases.table
        cid = _docker_id(service, RUNNING)

        def status() -> Text:
            cell = table.get_cell(RUNNING, "status")
            assert isinstance(cell, Text)
            return cell

        def style(component: str) -> Any:
            return table.get_component_rich_style(component, partial=True)

        # The health check's first verdict is pending: the warning colour.
        service.runtime.set_health(cid, "starting")
        await settle(pilot, lambda: status().plain == "running (starting)", what="starting")
        assert status().style == style("lease-table--health-starting")
        assert status().style.color == style("lease-table--soon").color  # $warning
        # Failing: the error colour, and the row is wide enough to read it.
        service.runtime.set_health(cid, "unhealthy")
        await settle(pilot, lambda: status().plain == "running (unhealthy)", what="unhealthy")
        assert status().style == style("lease-table--health-unhealthy")
        assert status().style.color == style("lease-table--failed").color  # $error
        column = table.columns[ColumnKey("status")]
        await settle(pilot, lambda: column.content_width >= len("running (unhealthy)"))
        # Healthy: the running colour.
        service.runtime.set_health(cid, "healthy")
        await settle(pilot, lambda: status().plain == "running (healthy)", what="healthy")
        assert status().style == style("lease-table--running")
        # No health check (or a word Docker does not use): plain running.
        service.runtime.set_health(cid, "weird\x1b[2J")
        await settle(pilot, lambda: status().plain == "running", what="running")


async def test_a_health_change_repaints_the_status_cell_alone() -> None:
    app, service, _ = _make()
    async with app.run_test(size=SIZE) as pilot:
        await _select(pilot, RUNNING)
        table = app.main.leases.table
        cid = _docker_id(service, RUNNING)
        service.runtime.set_health(cid, "unhealthy")  # widens the column: a full repaint
        await settle(pilot, lambda: str(table.get_cell(RUNNING, "status")).endswith("thy)"))
        changed: list[tuple[str, str]] = []
        full: list[str] = []
        set_cell, update_cell = table.set_ticking_cell, table.update_cell

        def record_cell(lease_id: str, key: str, cell: Text) -> None:
            changed.append((lease_id, key))
            set_cell(lease_id, key, cell)

        def record_update(row: Any, column: Any, value: Any, **kw: Any) -> None:
            full.append(str(column))
            update_cell(row, column, value, **kw)

        table.set_ticking_cell = record_cell  # type: ignore[method-assign]
        table.update_cell = record_update  # type: ignore[method-assign]
        service.runtime.set_health(cid, "healthy")
        await settle(pilot, lambda: str(table.get_cell(RUNNING, "status")) == "running (healthy)")
        assert changed == [(RUNNING, "status")]
        assert full == []
