"""The service interface covers the whole of ``LeaseService``, and the daemon's client all of it.

A public method added to :class:`~containerlease_tui.leases.LeaseService` must either join
:class:`~containerlease_tui.service_api.LeaseServiceAPI` (and so get a route and a
:class:`~containerlease_tui.daemon.client.RemoteLeaseService` method) or be named below with
the reason it does not belong there.
"""

from __future__ import annotations

import inspect

from containerlease_tui.daemon.client import RemoteLeaseService
from containerlease_tui.leases import LeaseService
from containerlease_tui.service_api import LeaseServiceAPI

# Public LeaseService members that are deliberately not part of the shells' interface.
NOT_IN_THE_PROTOCOL: dict[str, str] = {
    # A constructor for direct mode (opens Redis and the engine). Shells get their service from
    # service_api.connect_service, which picks direct mode or the daemon's client.
    "open": "constructor of direct mode; connect_service chooses the implementation",
}


def _public(cls: type) -> set[str]:
    """Public names defined on ``cls`` itself or its project bases (not ``object``/Protocol)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if klass.__module__.startswith("containerlease_tui"):
            names |= {n for n in vars(klass) if not n.startswith("_")}
    return names


def _protocol_members() -> set[str]:
    members = {n for n in vars(LeaseServiceAPI) if not n.startswith("_")}
    members |= set(getattr(LeaseServiceAPI, "__annotations__", {}))
    return members


def test_every_public_service_method_is_in_the_protocol_or_excluded() -> None:
    service = _public(LeaseService)
    protocol = _protocol_members()
    missing = service - protocol - set(NOT_IN_THE_PROTOCOL)
    hint = "add to LeaseServiceAPI (and a route) or to NOT_IN_THE_PROTOCOL"
    assert not missing, f"{hint}: {sorted(missing)}"
    stale = set(NOT_IN_THE_PROTOCOL) & protocol
    assert not stale, f"excluded yet in the protocol: {sorted(stale)}"
    gone = set(NOT_IN_THE_PROTOCOL) - service
    assert not gone, f"excluded names LeaseService no longer has: {sorted(gone)}"


def test_the_protocol_asks_nothing_direct_mode_lacks() -> None:
    missing = {n for n in _protocol_members() if not hasattr(LeaseService, n)}
    # Instance attributes (settings, user, is_admin) are set in __init__: check they are assigned.
    source = inspect.getsource(LeaseService.__init__)
    missing = {n for n in missing if f"self.{n} " not in source and f"self.{n}:" not in source}
    assert not missing, f"LeaseServiceAPI members LeaseService lacks: {sorted(missing)}"


def test_the_daemon_client_implements_the_whole_protocol() -> None:
    methods = {n for n in vars(LeaseServiceAPI) if not n.startswith("_")}
    missing = {n for n in methods if not hasattr(RemoteLeaseService, n)}
    assert not missing, f"RemoteLeaseService lacks: {sorted(missing)}"
    for name in methods:
        want = getattr(LeaseServiceAPI, name)
        have = getattr(RemoteLeaseService, name)
        if isinstance(want, property):
            assert isinstance(have, property), name
            continue
        is_coroutine = inspect.iscoroutinefunction(want)
        if name == "logs":  # an async iterator either way (a generator in the client)
            continue
        assert inspect.iscoroutinefunction(have) == is_coroutine, f"{name}: sync/async differs"
