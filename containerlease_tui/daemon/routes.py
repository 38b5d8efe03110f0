"""The daemon's versioned REST routes over :class:`~containerlease_tui.leases.LeaseService`.

Each request gets a service acting as the connection's peer (:mod:`.auth`): the user is never
read from the request. A lease named in a path is looked up again by the daemon (a lease object
from the client is never trusted), and every refusal is one typed JSON error
(:func:`.wire.error_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from containerlease_tui import __version__
from containerlease_tui.config import Settings
from containerlease_tui.daemon import wire
from containerlease_tui.daemon.auth import NoPeer, Peer, peer_of
from containerlease_tui.engine.protocol import Runtime
from containerlease_tui.errors import InvalidInput, LeaseError
from containerlease_tui.leases import LeaseService, ProvisionRequest, PullProgress
from containerlease_tui.models import Lease
from containerlease_tui.sanitize import json_line
from containerlease_tui.store.protocol import Store

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ACTIONS: Final = frozenset({"open a shell in", "run a command in", "read the logs of"})
MAX_TAIL: Final = 100_000


class Backend:
    """What every route shares: the daemon's settings, store and engine."""

    def __init__(self, settings: Settings, store: Store, engine: Runtime, log: logging.Logger):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.log = log
        self.inflight = 0
        self.idle = asyncio.Event()
        """Set while no request is in flight (SIGTERM waits for it)."""
        self.idle.set()

    def service(self, peer: Peer) -> LeaseService:
        return LeaseService(
            self.settings, self.store, self.engine, user=peer.user, admin=peer.admin
        )


BACKEND: Final = web.AppKey("backend", Backend)
PEER: Final = web.RequestKey("peer", Peer)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json_line(data), status=status, content_type="application/json", charset="utf-8"
    )


def _error(status: int, error_type: str, message: str) -> web.Response:
    return _json(wire.error_body(error_type, message), status)


def peer(request: web.Request) -> Peer:
    return request[PEER]


def service(request: web.Request) -> LeaseService:
    return request.app[BACKEND].service(peer(request))


async def _body(request: web.Request, model: type[M]) -> M:
    if not request.can_read_body:
        raw: object = {}
    else:
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("the request body is not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidInput("the request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"bad request: {where}: {first['msg']}") from None


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the peer, count the request in flight, and answer every failure as JSON."""
    backend = request.app[BACKEND]
    try:
        request[PEER] = peer_of(
            request.transport.get_extra_info("socket") if request.transport else None,
            backend.settings,
        )
    except NoPeer:
        return _error(401, "Unauthenticated", "the daemon could not tell who is calling")
    backend.inflight += 1
    backend.idle.clear()
    try:
        return await handler(request)
    except LeaseError as exc:
        status, body = wire.lease_error_body(exc)
        return _json(body, status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge"}.get(
            exc.status, "BadRequest"
        )
        return _error(exc.status, kind, exc.reason)
    except asyncio.CancelledError:
        raise
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as exc:  # a bug: one log line, a typed 500, the daemon goes on
        backend.log.error(
            "request failed",
            extra={
                "action": "request",
                "path": request.path[:200],
                "user": peer(request).user,
                "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            },
        )
        return _error(500, "InternalError", "internal error in the daemon (see its log)")
    finally:
        backend.inflight -= 1
        if not backend.inflight:
            backend.idle.set()


async def _stream(request: web.Request, items: AsyncIterator[object]) -> web.StreamResponse:
    """Write ``items`` as JSON lines; a client that goes away ends the stream quietly."""
    response = web.StreamResponse(headers={"Content-Type": wire.NDJSON})
    await response.prepare(request)
    try:
        async for item in items:
            await response.write((json_line(item) + "\n").encode())
    except LeaseError as exc:
        _, body = wire.lease_error_body(exc)
        with contextlib.suppress(ConnectionError):
            await response.write((json_line({"type": "error", **body}) + "\n").encode())
    except ConnectionError:
        return response
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


# --- routes --------------------------------------------------------------------------------------

routes = web.RouteTableDef()


@routes.get(f"{wire.API}/session")
async def session(request: web.Request) -> web.Response:
    who = peer(request)
    settings = request.app[BACKEND].settings
    body = wire.Session(
        user=who.user,
        admin=who.admin,
        uid=who.uid,
        limits=settings.limits.model_dump(mode="json"),
        images={k: v.model_dump(mode="json") for k, v in settings.images.items()},
        display=settings.display.model_dump(mode="json"),
        version=__version__,
    )
    return _json(body.model_dump(mode="json"))


@routes.get(f"{wire.API}/images")
async def images(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.IMAGES, await service(request).images()))


@routes.get(f"{wire.API}/health")
async def health(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.HEALTH, await service(request).health()))


@routes.get(f"{wire.API}/reapers")
async def reapers(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.REAPERS, await service(request).reaper_status()))


@routes.get(f"{wire.API}/leases")
async def list_leases(request: web.Request) -> web.Response:
    every = request.query.get("all", "") in ("1", "true")
    found = await service(request).list(all_users=every)
    if request.query.get("skipped", "") not in ("1", "true"):
        return _json(wire.dump(wire.LEASES, found))
    skipped = [{"lease_id": bad.lease_id, "reason": bad.reason} for bad in found.skipped]
    return _json({"leases": wire.dump(wire.LEASES, found), "skipped": skipped})


@routes.post(f"{wire.API}/leases")
async def submit(request: web.Request) -> web.Response:
    body = await _body(request, wire.ProvisionBody)
    req = ProvisionRequest(body.image, body.duration, body.name, body.cpus, body.memory, body.env)
    lease = await service(request).submit(req)
    request.app[BACKEND].log.info(
        "lease submitted", extra={"action": "submit", "lease": lease.id, "owner": lease.owner}
    )
    return _json(wire.dump(wire.LEASE, lease), 201)


@routes.post(f"{wire.API}/leases/{{ref}}/complete")
async def complete(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    lease_id = (await svc.resolve(request.match_info["ref"])).id
    queue: asyncio.Queue[object] = asyncio.Queue()

    def progress(p: PullProgress) -> None:
        queue.put_nowait({"type": "progress", "progress": wire.dump(wire.PROGRESS, p)})

    def status(lease: Lease) -> None:
        queue.put_nowait({"type": "status", "lease": wire.dump(wire.LEASE, lease)})

    async def run() -> None:
        try:
            made = await svc.complete(lease_id, on_progress=progress, on_status=status)
            queue.put_nowait({"type": "result", "lease": wire.dump(wire.LEASE, made)})
        except LeaseError as exc:
            _, body = wire.lease_error_body(exc)
            queue.put_nowait({"type": "error", **body})
        finally:
            queue.put_nowait(None)

    # Shielded from the client: one that disconnects mid-provision leaves a lease that still
    # ends running or failed, never half-made.
    task = asyncio.ensure_future(run())

    async def items() -> AsyncIterator[object]:
        while (item := await queue.get()) is not None:
            yield item

    try:
        return await _stream(request, items())
    finally:
        if not task.done():
            await asyncio.shield(task)


@routes.get(f"{wire.API}/leases/{{ref}}")
async def resolve(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.LEASE, await service(request).resolve(request.match_info["ref"])))


@routes.get(f"{wire.API}/leases/{{ref}}/status")
async def status(request: web.Request) -> web.Response:
    report = await service(request).status(request.match_info["ref"])
    return _json(wire.dump(wire.STATUS, report))


@routes.post(f"{wire.API}/leases/{{ref}}/extend")
async def extend(request: web.Request) -> web.Response:
    body = await _body(request, wire.ExtendBody)
    lease = await service(request).extend(request.match_info["ref"], body.by)
    return _json(wire.dump(wire.LEASE, lease))


@routes.delete(f"{wire.API}/leases/{{ref}}")
async def release(request: web.Request) -> web.Response:
    lease = await service(request).release(request.match_info["ref"])
    request.app[BACKEND].log.info(
        "lease released", extra={"action": "release", "lease": lease.id, "by": peer(request).user}
    )
    return _json(wire.dump(wire.LEASE, lease))


def _lifecycle(name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        svc = service(request)
        op: Callable[[str], Awaitable[Lease]] = getattr(svc, name)
        return _json(wire.dump(wire.LEASE, await op(request.match_info["ref"])))

    return handler


for _name in ("stop", "start", "restart"):
    routes.post(f"{wire.API}/leases/{{ref}}/{_name}")(_lifecycle(_name))


@routes.post(f"{wire.API}/leases/{{ref}}/container")
async def container_for(request: web.Request) -> web.Response:
    body = await _body(request, wire.ContainerBody)
    if body.action not in _ACTIONS:
        raise InvalidInput(f"unknown action {body.action[:40]!r}")
    lease = await service(request).container_for(request.match_info["ref"], body.action)
    return _json(wire.dump(wire.LEASE, lease))


@routes.get(f"{wire.API}/leases/{{ref}}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    lease = await svc.resolve(request.match_info["ref"])  # the daemon's record, not the client's
    follow = request.query.get("follow", "") in ("1", "true")
    raw_tail = request.query.get("tail", "all")
    tail: int | str = "all"
    if raw_tail != "all":
        if not raw_tail.isdigit() or int(raw_tail) > MAX_TAIL:
            raise InvalidInput(f"tail must be 'all' or a number up to {MAX_TAIL}")
        tail = int(raw_tail)
    # Refused before the stream starts: a clean 403, not an error line in a 200.
    svc.policy.authorize(lease, "read the logs of", svc.user, svc.is_admin)
    lines = svc.logs(lease, follow=follow, tail=tail)

    async def items() -> AsyncIterator[object]:
        async for line in lines:
            yield {"line": line}

    return await _stream(request, items())


@routes.post(f"{wire.API}/leases/{{ref}}/exec")
async def exec_(request: web.Request) -> web.Response:
    body = await _body(request, wire.ExecBody)
    svc = service(request)
    lease = await svc.container_for(request.match_info["ref"], "run a command in")
    result = await svc.exec(lease, body.cmd)
    return web.Response(
        text=wire.ExecWire.of(result).model_dump_json(), content_type="application/json"
    )


@routes.post(f"{wire.API}/leases/{{ref}}/send")
async def send(request: web.Request) -> web.Response:
    body = await _body(request, wire.SendBody)
    answer = await service(request).send(request.match_info["ref"], body.message, body.timeout)
    return _json({"reply": answer.reply, "seconds": answer.seconds})


@routes.get(f"{wire.API}/events")
async def events(request: web.Request) -> web.Response:
    after = request.query.get("after", "$")[:64]
    raw = request.query.get("block_ms", "2000")
    block = int(raw) if raw.isdigit() else 2000
    batch = await service(request).events(after, block_ms=min(block, 30_000))
    return _json(wire.dump(wire.EVENTS, batch))


@routes.get(f"{wire.API}/events/last")
async def last_event(request: web.Request) -> web.Response:
    return _json({"id": await service(request).last_event_id()})


@routes.get(f"{wire.API}/leases/{{ref}}/state")
async def container_state(request: web.Request) -> web.Response:
    svc = service(request)
    lease = await svc.resolve(request.match_info["ref"])
    return _json(wire.dump(wire.STATE, await svc.container_state(lease)))


@routes.post(f"{wire.API}/containers/states")
async def container_states(request: web.Request) -> web.Response:
    body = await _body(request, wire.IdsBody)
    svc = service(request)
    leases: list[Lease] = []
    for lease_id in body.ids:
        with contextlib.suppress(LeaseError):  # gone meanwhile: no state, as in direct mode
            leases.append(await svc.resolve(lease_id))
    return _json(wire.dump(wire.STATES, await svc.container_states(leases)))


@routes.get(f"{wire.API}/leases/{{ref}}/settled")
async def settled(request: web.Request) -> web.Response:
    svc = service(request)
    lease = await svc.resolve(request.match_info["ref"])
    raw = request.query.get("within_ms", "2000")
    within = min(int(raw) if raw.isdigit() else 2000, 10_000)
    state = await svc.settled(lease, timedelta(milliseconds=within))
    return _json(wire.dump(wire.STATE, state))


@routes.get(f"{wire.API}/leases/{{ref}}/last-lines")
async def last_lines(request: web.Request) -> web.Response:
    svc = service(request)
    lease = await svc.resolve(request.match_info["ref"])
    svc.policy.authorize(lease, "read the logs of", svc.user, svc.is_admin)
    raw = request.query.get("count", "10")
    count = min(int(raw) if raw.isdigit() else 10, 1000)
    return _json(wire.dump(wire.LINES, await svc.last_lines(lease, count)))


@routes.post(f"{wire.API}/leases/{{ref}}/check-shell")
async def check_shell(request: web.Request) -> web.Response:
    svc = service(request)
    lease = await svc.resolve(request.match_info["ref"])
    await svc.check_shell(lease)
    return _json({"ok": True})


@routes.post(f"{wire.API}/events/log")
async def event_log(request: web.Request) -> web.Response:
    body = await _body(request, wire.EventLogBody)
    try:
        filt = wire.FILTER.validate_python(body.filter)
    except ValidationError:
        raise InvalidInput("bad request: filter") from None
    history = await service(request).event_log(filt, limit=body.limit)
    return _json(wire.dump(wire.HISTORY, history))


# The reports use the daemon's clock: a client's ``now`` would let it move the day boundary.
@routes.get(f"{wire.API}/spend")
async def spend(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.SPEND, await service(request).spend()))


@routes.get(f"{wire.API}/outlook")
async def outlook(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.OUTLOOK, await service(request).outlook()))


@routes.get(f"{wire.API}/capacity")
async def capacity(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.CAPACITY, await service(request).capacity()))


@routes.get(f"{wire.API}/reapers/overview")
async def reaper_overview(request: web.Request) -> web.Response:
    raw = request.query.get("upcoming", "10")
    upcoming = min(int(raw) if raw.isdigit() else 10, 1000)
    overview = await service(request).reaper_overview(upcoming=upcoming)
    return _json(wire.dump(wire.OVERVIEW, overview))


@routes.get(f"{wire.API}/volumes")
async def volumes(request: web.Request) -> web.Response:
    return _json(wire.dump(wire.VOLUMES, await service(request).volumes()))


@routes.delete(f"{wire.API}/volumes/{{name}}")
async def volume_rm(request: web.Request) -> web.Response:
    return _json({"name": await service(request).volume_rm(request.match_info["name"])})


from containerlease_tui.daemon.shell import shell_route  # noqa: E402 (it uses the helpers above)

routes.get(f"{wire.API}/leases/{{ref}}/shell")(shell_route)


def application(backend: Backend) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=wire.MAX_BODY)
    app[BACKEND] = backend
    app.add_routes(routes)
    return app
