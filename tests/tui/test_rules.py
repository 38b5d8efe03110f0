"""The TUI asks the service's LeasePolicy: the form marks the field an error names, and the
lease keys refuse with the service's own words before anything is sent."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from containerlease_tui.tui.screens import ConfirmScreen, ExtendScreen

from .helpers import loaded, make, settle

SIZE = (120, 36)


async def test_the_form_validates_with_the_services_policy() -> None:
    app, service, _ = make()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        form = app.main.form
        await settle(pilot, lambda: form.policy is service.policy, what="the service's policy")
        await pilot.press("n")
        await pilot.click("#name")
        # The message mentions "memory": guessing the field from the text marked the wrong one.
        await pilot.press(*"Memory X")
        await settle(pilot, lambda: "invalid name" in form.error)
        assert form.query_one("#name", Input).has_class("-invalid")
        assert not form.query_one("#memory", Input).has_class("-invalid")
        assert not form.query_one("#memory-hint").has_class("-invalid")


async def test_lease_keys_refuse_with_the_policys_reason() -> None:
    app, service, toasts = make()
    sent: list[str] = []

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args))
        raise AssertionError("must not be called")

    service.extend = refuse  # type: ignore[method-assign]
    service.release = refuse  # type: ignore[method-assign]
    service.shell = refuse  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table

        table.select_lease("p2q8r4tu")  # alice's failed lease
        await pilot.press("e")
        reason = "lease p2q8r4tu is failed: cannot extend"
        await settle(pilot, lambda: (reason, "warning") in toasts)
        assert not isinstance(app.screen, ExtendScreen)

        table.select_lease("e5f6g7hj")  # bob's
        await pilot.press("d")
        reason = "lease e5f6g7hj belongs to bob: only its owner or an admin may delete it"
        await settle(pilot, lambda: (reason, "warning") in toasts)
        assert not isinstance(app.screen, ConfirmScreen)

        table.select_lease("h3j9v7sf")  # carol's stopped lease
        await pilot.press("s")
        await settle(pilot, lambda: any("belongs to carol" in t for t, _ in toasts))
        assert sent == []
        assert service.allowed(service.leases[0], "shell") is None  # api-dev: running, mine
