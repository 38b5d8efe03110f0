"""The host side of ``containerlease cp``: packing a host file or folder into a tar archive for
the engine, and unpacking what the engine sends back, safely.

Going in, nothing outside what the user named is read: a symlink is stored as a link (never
followed), and one that points outside the folder being copied, or a device, FIFO or socket, is
refused. Coming out, the archive is untrusted (the container wrote it): every entry goes through
:func:`tarfile.data_filter`, so an absolute name, a ``..`` component, a link leading outside the
destination, a device file or a setuid bit is refused or stripped, and nothing is written outside
the destination. Both raise :class:`ArchiveError` with one line for the user.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ArchiveError", "Packed", "pack", "unpack"]


class ArchiveError(ValueError):
    """A copy refused: the reason, in one line."""


@dataclass(frozen=True)
class Packed:
    """An archive ready for the engine."""

    data: bytes
    files: int
    size: int
    """Bytes of file content in it."""


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owned by the container's root, as `docker cp` does; no setuid/setgid/sticky bits.
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode &= 0o777
    return info


def pack(source: Path, *, limit: int, name: str | None = None) -> Packed:
    """A tar of ``source`` (a file or a folder) under ``name`` (default: its own name).

    Refuses a symlink inside ``source`` that points outside it, and special files; more than
    ``limit`` bytes of content; anything unreadable.
    """
    try:
        root = source.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ArchiveError(f"{source}: no such file or folder") from None
    top = name or root.name or "root"
    buffer = io.BytesIO()
    files = 0
    size = 0
    try:
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries = [root]
            if root.is_dir():
                for folder, dirs, names in os.walk(root, followlinks=False):
                    dirs.sort()
                    base = Path(folder)
                    entries.extend(base / d for d in dirs)
                    entries.extend(base / n for n in sorted(names))
            for path in entries:
                mode = path.lstat().st_mode
                relative = path.relative_to(root)
                arcname = top if path == root else f"{top}/{relative.as_posix()}"
                if stat.S_ISLNK(mode):
                    target = (path.parent / os.readlink(path)).resolve()
                    if target != root and root not in target.parents:
                        raise ArchiveError(
                            f"{path} is a symlink to {target}, outside {source}: refused"
                        )
                elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise ArchiveError(f"{path} is not a regular file or folder: refused")
                info = _normalise(tar.gettarinfo(str(path), arcname))
                if info.isreg():
                    size += info.size
                    files += 1
                    if size > limit:
                        raise ArchiveError(
                            f"{source} is larger than the copy limit of {limit} bytes "
                            "([limits] max_copy_bytes)"
                        )
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    except OSError as exc:
        raise ArchiveError(f"cannot read {exc.filename or source}: {exc.strerror}") from None
    return Packed(buffer.getvalue(), files, size)


def unpack(data: bytes, destination: Path) -> list[str]:
    """Unpack an archive from the engine; the names written, relative to where they went.

    An existing folder ``destination`` receives the archive's top entry under its own name;
    otherwise the top entry is written as ``destination`` (its parent folder must exist).
    Every entry is checked first and the whole copy refused if any would escape.
    """
    if destination.is_dir():
        base, rename = destination, None
    elif destination.parent.is_dir():
        base, rename = destination.parent, destination.name
    else:
        raise ArchiveError(f"{destination.parent}: no such folder")
    base_text = os.path.realpath(base)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            if not members:
                raise ArchiveError("the container sent an empty archive")
            top = members[0].name.split("/", 1)[0]
            checked: list[tarfile.TarInfo] = []
            for member in members:
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    raise ArchiveError(f"refused archive entry {member.name[:80]!r}")
                if rename is not None:
                    head, sep, rest = member.name.partition("/")
                    if head != top:
                        raise ArchiveError(f"refused archive entry {member.name[:80]!r}")
                    member = member.replace(name=rename + sep + rest, deep=False)
                try:
                    checked.append(tarfile.data_filter(member, base_text))
                except tarfile.FilterError as exc:
                    raise ArchiveError(f"refused archive entry: {exc}") from None
            # data_filter again on each entry as it is written: a link written earlier in the
            # archive cannot redirect a later entry either.
            tar.extractall(base_text, members=checked, filter="data")
    except tarfile.FilterError as exc:
        raise ArchiveError(f"refused archive entry: {exc}") from None
    except tarfile.TarError as exc:
        raise ArchiveError(f"the container sent an unreadable archive: {exc}") from None
    except OSError as exc:
        raise ArchiveError(f"cannot write {exc.filename or destination}: {exc.strerror}") from None
    return [m.name for m in checked]
