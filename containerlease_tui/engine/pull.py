"""Image pulls: Docker's progress stream as :class:`PullProgress`, its errors made readable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncGenerator, Callable
from typing import Final, cast

import aiodocker
import aiohttp

from containerlease_tui.engine import _compat
from containerlease_tui.engine.connection import Connection
from containerlease_tui.engine.errors import ImageUnavailable
from containerlease_tui.engine.parse import Json, as_dict, as_int, as_str, one_line
from containerlease_tui.engine.types import PullProgress

# Once a pull has started streaming, this long without a single message counts as stalled.
PULL_STALL: Final = 120.0

_Messages = AsyncGenerator[dict[str, object], None]


def pull_reason(message: str) -> str:
    """Docker's pull errors are long Go error chains; keep what tells the user what to do."""
    text = one_line(message, 160)
    low = text.lower()
    if "no such host" in low or "server misbehaving" in low:
        host = re.search(r"lookup (\S+?)(?: on |:|$)", text)
        return f"cannot resolve registry {host.group(1)}" if host else "cannot resolve registry"
    if "x509" in low or "certificate" in low:
        return "the registry's TLS certificate is not trusted"
    if "connection refused" in low:
        return "the registry refused the connection"
    if "network is unreachable" in low or "no route to host" in low:
        return "no network route to the registry"
    if "i/o timeout" in low or "deadline exceeded" in low or "timeout" in low:
        return "the registry did not answer in time"
    if "manifest unknown" in low or "not found" in low:
        return "the registry has no such image or tag"
    if "unauthorized" in low or "denied" in low or "authentication required" in low:
        return "access denied (the image does not exist or needs a registry login)"
    return text


class PullTracker:
    """Docker's pull messages as :class:`PullProgress`: the layers seen and done, and each
    layer's bytes as last known.

    Docker's own numbers restart per phase (``Downloading`` counts up, ``Extracting`` counts
    again from zero) and its ``Download complete`` / ``Pull complete`` carry none. Reported raw,
    a bar would run backwards, and a shell that keeps only the newest report of a layer (the
    TUI's queue does, when it falls behind) would lose the layer's size for good. So a layer's
    ``current`` / ``total`` here are its downloaded bytes and its size: they never go back,
    and a layer done reports ``current == total``.
    """

    _DOWNLOADED: Final = frozenset(
        {"Verifying Checksum", "Download complete", "Extracting", "Pull complete"}
    )

    def __init__(self) -> None:
        self._done: dict[str, bool] = {}
        self._bytes: dict[str, tuple[int, int]] = {}  # layer id → (downloaded, size)

    def report(self, message: Json) -> PullProgress:
        """The progress one message of the pull stream amounts to."""
        layer = as_str(message.get("id"))
        status = as_str(message.get("status"))
        if not layer or status.startswith("Pulling from"):  # that one's id is the tag
            return self._progress("", status, 0, 0)
        done = status in ("Pull complete", "Already exists")
        self._done[layer] = self._done.get(layer, False) or done
        detail = as_dict(message.get("progressDetail"))
        seen, size = self._bytes.get(layer, (0, 0))
        size = max(size, as_int(detail.get("total")) or 0)
        if status == "Downloading":
            seen = max(seen, as_int(detail.get("current")) or 0)
        elif status in self._DOWNLOADED:
            seen = max(seen, size)
        seen = min(seen, size) if size else seen
        self._bytes[layer] = (seen, size)
        return self._progress(layer, status, seen, size)

    def _progress(self, layer: str, status: str, current: int, total: int) -> PullProgress:
        return PullProgress(
            layer=layer,
            status=status,
            current=current,
            total=total,
            layers_done=sum(self._done.values()),
            layers_total=len(self._done),
        )


async def pull(
    conn: Connection, ref: str, on_progress: Callable[[PullProgress], None] | None
) -> None:
    """Pull ``ref``, reporting each progress message (ImageUnavailable if the pull fails)."""
    tracker = PullTracker()
    messages = cast(_Messages, conn.client().images.pull(ref, stream=True))
    try:
        first = True
        while (message := await _next_message(conn, ref, messages, first)) is not None:
            first = False
            report = tracker.report(message)
            if on_progress is not None:
                on_progress(report)
    finally:
        with contextlib.suppress(Exception):
            await messages.aclose()


async def _next_message(
    conn: Connection, ref: str, messages: _Messages, first: bool
) -> Json | None:
    """The pull's next progress message (None at its end), with its failures translated."""
    failed = f"image {ref} is not available locally and could not be pulled"
    # Docker resolves and contacts the registry before its first message, so the configured
    # timeout bounds that connect phase; after that only a long silence ends the pull.
    limit = conn.timeout if first else max(PULL_STALL, conn.timeout)
    try:
        async with asyncio.timeout(limit):
            return as_dict(await anext(messages))
    except StopAsyncIteration:
        return None
    except aiodocker.DockerError as exc:
        if _compat.connect_failed(exc):
            raise conn.unreachable(exc.__context__ or exc) from exc
        raise ImageUnavailable(f"{failed}: {pull_reason(exc.message)}") from exc
    except TimeoutError as exc:
        what = "the registry did not answer" if first else "the pull stalled"
        raise ImageUnavailable(f"{failed}: {what} for {limit:g}s") from exc
    except (aiohttp.ClientError, OSError, json.JSONDecodeError) as exc:
        raise conn.translate(exc, f"pull image {ref}", None) from exc
