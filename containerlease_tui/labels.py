"""The container label schema: the keys, writing them, reading them, and whose a container is.

Every leased container carries its labels, written once at creation (:func:`labels_for`). They
are all the reaper needs when a lease record is lost: which lease (and installation) a container
belongs to (:func:`belongs`, :func:`lease_of`), until when (:func:`parse_label_deadline`), and
enough to rebuild ("adopt") its record: owner, name, image and creation time. Docker labels are
immutable: an extension does not move ``expires-at``, which stays the deadline at creation.

:func:`parse_rfc3339` (over :func:`rfc3339_parts`) is the one parser of label and Docker
timestamps, nanosecond fractions included.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from containerlease_tui.models import Lease

LABEL_LEASE: Final = "containerlease.lease"
LABEL_OWNER: Final = "containerlease.owner"
LABEL_EXPIRES: Final = "containerlease.expires-at"  # RFC 3339 UTC, the deadline at creation
LABEL_INSTANCE: Final = "containerlease.instance"  # = settings.redis.key_prefix
LABEL_NAME: Final = "containerlease.name"  # the lease's name
LABEL_IMAGE: Final = "containerlease.image"  # the [images] entry it was made from
LABEL_CREATED: Final = "containerlease.created-at"  # RFC 3339 UTC, the lease's creation
LABEL_VOLUME: Final = "containerlease.volume"  # on a named volume: the name its owner uses

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d{2}:\d{2})?$"
)


# --- timestamps ------------------------------------------------------------------------------


def rfc3339_parts(text: str, *, naive_utc: bool = False) -> tuple[datetime, int] | None:
    """An RFC 3339 time as (the whole seconds, in its own zone; the fraction in nanoseconds).

    Exact to the nanosecond, so two of Docker's log timestamps compare as Docker meant them.
    A time without a zone is refused, or taken as UTC with ``naive_utc``; None if unparseable.
    """
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    if zone is None and not naive_utc:
        return None
    offset = "+00:00" if zone is None or zone in ("Z", "z") else zone
    try:
        whole = datetime.fromisoformat(f"{day}T{clock}{offset}")
    except ValueError:  # e.g. month 13
        return None
    return whole, int((fraction or "").ljust(9, "0"))


def parse_rfc3339(text: object, *, naive_utc: bool = False) -> datetime | None:
    """An RFC 3339 time as an aware UTC datetime (microseconds), or None if it is not one."""
    if not isinstance(text, str):
        return None
    parts = rfc3339_parts(text, naive_utc=naive_utc)
    if parts is None:
        return None
    whole, nanos = parts
    try:
        return (whole + timedelta(microseconds=nanos // 1000)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed out of range by the zone
        return None


def format_label_time(moment: datetime) -> str:
    """A deadline as the ``expires-at`` label writes it (RFC 3339, ``Z`` for UTC)."""
    return moment.isoformat().replace("+00:00", "Z")


# --- writing and reading ---------------------------------------------------------------------


def labels_for(lease: Lease, prefix: str) -> dict[str, str]:
    """The labels of ``lease``'s container in the installation whose key prefix is ``prefix``."""
    return {
        LABEL_LEASE: lease.id,
        LABEL_OWNER: lease.owner,
        LABEL_EXPIRES: format_label_time(lease.expires_at),
        LABEL_INSTANCE: prefix,
        LABEL_NAME: lease.name,
        LABEL_IMAGE: lease.image,
        LABEL_CREATED: format_label_time(lease.created_at),
    }


def label_filter(prefix: str | None = None) -> list[str]:
    """Docker's ``label`` list filter: lease containers (of installation ``prefix`` if given)."""
    labels = [LABEL_LEASE]
    if prefix is not None:
        labels.append(f"{LABEL_INSTANCE}={prefix}")
    return labels


def belongs(labels: Mapping[str, str], prefix: str) -> bool:
    """Whether a container with these labels is a lease container of installation ``prefix``.

    Checked on what Docker lists even though the listing filtered on it: never trust it blindly.
    """
    return bool(labels.get(LABEL_LEASE)) and labels.get(LABEL_INSTANCE) == prefix


def lease_of(labels: Mapping[str, str], prefix: str) -> str | None:
    """The id of the lease a container of installation ``prefix`` belongs to (None: not ours)."""
    return labels[LABEL_LEASE] if belongs(labels, prefix) else None


def parse_label_deadline(text: str | None) -> datetime | None:
    """The RFC 3339 deadline of a ``containerlease.expires-at`` label (None if absent or bad).

    A deadline without a zone is taken as UTC.
    """
    if not text:
        return None
    return parse_rfc3339(text, naive_utc=True)


# --- named volumes ---------------------------------------------------------------------------
# A user's volume ``work`` is the engine's ``clv-<20 hex>-work``: the hex is a digest of the
# installation and the owner, so two users' ``work`` never meet, and no name a user can type
# reaches another user's volume. The labels say the same again and are checked on every mount.


def volume_namespace(prefix: str, owner: str) -> str:
    """The engine-name prefix of ``owner``'s volumes in installation ``prefix``."""
    digest = hashlib.sha256(f"{prefix}\0{owner}".encode()).hexdigest()[:20]
    return f"clv-{digest}-"


def volume_engine_name(prefix: str, owner: str, name: str) -> str:
    """The engine's name of ``owner``'s volume ``name`` (an already validated volume name)."""
    return volume_namespace(prefix, owner) + name


def volume_labels(prefix: str, owner: str, name: str) -> dict[str, str]:
    """The labels a named volume is created with."""
    return {LABEL_VOLUME: name, LABEL_OWNER: owner, LABEL_INSTANCE: prefix}


def volume_filter(prefix: str, owner: str | None = None) -> list[str]:
    """Docker's ``label`` filter: the named volumes of installation ``prefix`` (of ``owner``)."""
    labels = [LABEL_VOLUME, f"{LABEL_INSTANCE}={prefix}"]
    if owner is not None:
        labels.append(f"{LABEL_OWNER}={owner}")
    return labels


def owns_volume(engine_name: str, labels: Mapping[str, str], prefix: str, owner: str) -> bool:
    """Whether a volume is ``owner``'s in installation ``prefix``: by its name and its labels.

    Never trusted from one alone: anybody with the Docker socket can make a volume with any
    name, and a label filter only says what the listing matched.
    """
    name = labels.get(LABEL_VOLUME, "")
    return (
        bool(name)
        and labels.get(LABEL_OWNER) == owner
        and labels.get(LABEL_INSTANCE) == prefix
        and engine_name == volume_engine_name(prefix, owner, name)
    )
