"""The lease daemon: ``containerlease serve`` alone holds the Docker engine and Redis, and
serves :class:`~containerlease_tui.leases.LeaseService` over a unix socket; the app and the CLI
become its unprivileged clients (:mod:`.client`). See docs/security.md.

- :mod:`.wire`: the JSON shapes (pydantic adapters over the service's own types) and the one
  error shape;
- :mod:`.auth`: who the caller is, from the kernel (``SO_PEERCRED``), never from the request;
- :mod:`.sockets`: the socket's path checks, creation and permissions;
- :mod:`.routes` and :mod:`.server`: the versioned REST routes and the foreground daemon;
- :mod:`.client`: :class:`RemoteLeaseService`, the same interface over the socket.
"""
