"""Writing a new file in a folder others may write to, without ever touching an existing one.

``./containerlease-<id>.log`` is written where the user stands, which may be ``/tmp`` or a shared
project folder: anybody who can write there can plant a symlink (or a hard link) by that name
pointing at the user's ``~/.bashrc``. A plain ``open(path, "w")`` follows the link and truncates
the victim. :func:`write_new` creates with ``O_CREAT | O_EXCL | O_NOFOLLOW``: an existing name,
a symlink included (dangling or not), is never opened; the next free name is taken instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

MAX_ATTEMPTS: Final = 100
"""Names tried (``stem.log``, ``stem-1.log`` … ``stem-99.log``) before giving up."""
_FLAGS: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class NoFreeName(OSError):
    """Every candidate name exists already (or is a planted link): nothing was written."""


def candidates(folder: Path, stem: str, suffix: str, attempts: int = MAX_ATTEMPTS) -> list[Path]:
    """``folder/stem.suffix``, then ``folder/stem-1.suffix``, ``-2`` … (``attempts`` in all)."""
    return [folder / f"{stem}{f'-{n}' if n else ''}{suffix}" for n in range(attempts)]


def write_new(
    folder: Path, stem: str, suffix: str, data: bytes, *, attempts: int = MAX_ATTEMPTS
) -> Path:
    """Write ``data`` to a file that did not exist before, mode 0600; return its path.

    Raises :class:`NoFreeName` when every candidate name is taken, or the ``OSError`` of the
    first failure that is not "exists" (a read-only folder, a full disk). A file that could not
    be written completely is removed again.
    """
    for path in candidates(folder, stem, suffix, attempts):
        try:
            fd = os.open(path, _FLAGS, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink where O_EXCL did not catch it: skip it too
                continue
            raise
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except BaseException:
            # Ours (created a moment ago by this process): do not leave half a file behind.
            path.unlink(missing_ok=True)
            raise
        return path
    raise NoFreeName(
        errno.EEXIST,
        f"{folder}/{stem}{suffix} and {attempts - 1} numbered names after it exist already",
    )
