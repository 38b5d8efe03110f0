"""The app past bad data (issue 13, item 2): an unreadable lease record leaves the readable ones
on screen, and an unreadable stream entry does not end the event follower."""

from __future__ import annotations

from datetime import timedelta

from containerlease_tui.models import EventType

from .fakes import NOW, demo_leases
from .helpers import loaded, make, settle

SIZE = (120, 36)


async def test_the_app_shows_the_good_leases_past_bad_data() -> None:
    app, service, _ = make()
    service.memory.put_corrupt(
        "zzzzbad1", "status: unknown value", owner="alice", deadline=NOW + timedelta(minutes=5)
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = app.main.leases.table
        assert table.row_count == 6  # every readable lease (was: "0 leases")
        # An unreadable entry, then a change: the follower steps over the one, shows the other.
        service.memory.add_unreadable_event()
        first = demo_leases()[0]
        renamed = first.model_copy(update={"id": "zzzznew1", "name": "late-one"})
        service.memory.put(renamed)
        service.memory.add_event(EventType.CREATED, renamed.id, renamed.owner)
        await settle(pilot, lambda: table.row_count == 7, what="the new lease after the bad entry")
