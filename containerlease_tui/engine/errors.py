"""The engine's typed errors: every aiodocker / aiohttp failure leaves the engine as one of them,
with a message that is one line a user understands (no secrets)."""

from __future__ import annotations


class EngineError(Exception):
    """A Docker engine problem, phrased as one line a user understands (no secrets)."""


class EngineUnavailable(EngineError):
    """The Docker daemon cannot be reached: no socket, connection refused, or no answer."""


class ImageUnavailable(EngineError):
    """The image is not present locally and could not be pulled."""
