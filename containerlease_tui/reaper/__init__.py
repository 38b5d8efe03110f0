"""Reaper: removes leased containers at their deadline, exactly once, however many reapers run.

One :class:`Reaper` runs either as an asyncio task inside the terminal app or headless
(``containerlease --reaper``, see :func:`run_headless`). How it works, and where:

* **Deadline-driven** (``loop``). It sleeps until the earliest deadline
  (``store.next_deadline()``), the next expiry-warning point, the next reconciliation sweep or
  the poll interval, whichever comes first; a follower task on the event stream wakes it at once
  on ``created``, ``extended`` and ``released`` events (a new or extended lease may move the
  earliest deadline).
* **Claims** (``claims``). Each due lease is claimed (``SET NX PX`` with a random token) before
  anything is done to it; the claim is kept alive while the work lasts and released by
  compare-and-delete. Closing the lease (``reaping``) is one ``store.update`` whose
  ``running → expired`` transition the state machine allows only once, so a second reaper
  racing past a lost claim writes nothing.
* **Retries** (``removal``). Removal is retried with exponential backoff and jitter; a lease
  that still fails is marked ``failed`` and postponed (with a growing delay) — never dropped
  from the deadlines.
* **Sweep** (``sweep``). Every ``sweep_interval`` Docker's containers carrying our labels are
  compared with Redis: containers whose record is gone are adopted, those whose lease is closed
  are removed once their label deadline plus ``grace`` has passed; records whose container
  vanished are closed. Containers without our labels (lease *and* this installation's instance
  label) are never touched.
* **Adoption** (``adoption``). An epoch key read every second tells when Redis lost its data;
  every labelled container without a record then gets one rebuilt from its labels, with the
  deadline ``max(label deadline, detection + grace)``.
* **Outages.** After a failed pass, what failed (Redis or Docker) is PINGed every 0.2 s and the
  pass runs again as soon as it answers; an unreachable engine is no removal attempt. When Redis
  refuses writes, due containers are removed without a claim and closed once it writes again.
* **Warnings** (``expiry``): one ``expiring`` event per lease at each warning point.
* **Heartbeat** (``heartbeat``). A running reaper refreshes its entry in ``P:reapers`` every few
  seconds; :func:`reaper_status` (``status``) tells whether any reaper is alive.
* **Robust.** Redis or Docker being unreachable is logged and backed off from; the loop keeps
  running and catches up on recovery. Stopping finishes in-flight removals; cancelling releases
  claims.

The rest: ``context`` (what the jobs share, :class:`PassResult`), ``timing`` (tuning constants
and delay arithmetic), ``logs`` (JSON log lines), ``daemon`` (the headless process).
"""

from containerlease_tui.labels import parse_label_deadline
from containerlease_tui.reaper.context import PassResult
from containerlease_tui.reaper.daemon import run_headless
from containerlease_tui.reaper.logs import LOGGER_NAME, JsonFormatter
from containerlease_tui.reaper.loop import WAKE_EVENTS, Reaper
from containerlease_tui.reaper.removal import LabelIndex as _LabelIndex
from containerlease_tui.reaper.status import (
    NO_REAPER,
    NO_REAPER_SHORT,
    ReaperStatus,
    humane_left,
    reaper_report,
    reaper_status,
)
from containerlease_tui.reaper.sweep import STALLED_AFTER, SWEEP_YOUNG
from containerlease_tui.reaper.timing import (
    CLEANUP_TIMEOUT,
    DUE_BATCH,
    HEARTBEAT_PERIOD,
    HEARTBEAT_TTL_FACTOR,
    MAX_POSTPONE,
    OVERDUE_POLL,
    WAKE_SLACK,
    error_backoff,
    postpone_delay,
    retry_delay,
    wake_delay,
)

__all__ = [
    "CLEANUP_TIMEOUT",
    "DUE_BATCH",
    "HEARTBEAT_PERIOD",
    "HEARTBEAT_TTL_FACTOR",
    "LOGGER_NAME",
    "MAX_POSTPONE",
    "NO_REAPER",
    "NO_REAPER_SHORT",
    "OVERDUE_POLL",
    "STALLED_AFTER",
    "SWEEP_YOUNG",
    "WAKE_EVENTS",
    "WAKE_SLACK",
    "JsonFormatter",
    "PassResult",
    "Reaper",
    "ReaperStatus",
    "_LabelIndex",
    "error_backoff",
    "humane_left",
    "parse_label_deadline",
    "postpone_delay",
    "reaper_report",
    "reaper_status",
    "retry_delay",
    "run_headless",
    "wake_delay",
]
