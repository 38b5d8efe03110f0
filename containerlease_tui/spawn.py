"""Starting ContainerLease's own helper processes (the detached provisioner, the guardian
reaper) so that nothing from where the user stands runs in them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["helper_command", "helper_env", "spawn_detached"]


def _helper_path() -> list[str]:
    """The import path of a helper process: this process's, minus the current directory.

    ``python -m`` (and ``-c``, and an empty ``PYTHONPATH`` entry) put the current directory
    first on ``sys.path``: in a folder others can write, whoever wrote
    ``./containerlease_tui/__init__.py`` would run as the user (or, behind sudo, as the service
    user). So the helper gets only absolute entries that are not the current directory, with the
    folder this package was imported from in front (it is trusted: it is running now).
    """
    import containerlease_tui

    root = os.path.dirname(os.path.dirname(os.path.abspath(containerlease_tui.__file__)))
    try:
        here: str | None = os.path.realpath(os.getcwd())
    except OSError:  # the current directory was removed
        here = None
    paths = [root]
    for entry in sys.path:
        if not entry or not os.path.isabs(entry) or entry in paths:
            continue
        if here is not None and os.path.realpath(entry) == here:
            continue
        paths.append(entry)
    return paths


def helper_command(*args: str) -> list[str]:
    """The command line of a helper process running ``containerlease ARGS``, isolated.

    ``-I``: no ``PYTHON*`` variables, no user site-packages, and no script or current directory
    on ``sys.path``; the path is set explicitly (:func:`_helper_path`) and the entry point is the
    package's own, imported by absolute name. Start it with ``cwd="/"``.
    """
    code = (
        f"import sys; sys.path[:] = {_helper_path()!r}; "
        "from containerlease_tui.cli import main; main()"
    )
    return [sys.executable, "-I", "-c", code, *args]


def helper_env() -> dict[str, str]:
    """This process's environment without ``PYTHON*`` (``-I`` ignores them anyway; they have no
    business in the helper). The rest is kept: configuration, ``HOME``, ``DOCKER_HOST`` and
    ``SUDO_UID`` (the acting user behind sudo) decide what the helper does, as they did here."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PYTHON")}


def spawn_detached(args: list[str], *, log: Path | None = None) -> int:
    """Start ``containerlease ARGS`` in its own session (a hang-up of this terminal does not
    reach it), from ``/``, with stderr appended to ``log`` (or discarded); its pid."""
    err = subprocess.DEVNULL if log is None else _open_log(log)
    try:
        proc = subprocess.Popen(
            helper_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            cwd="/",
            env=helper_env(),
        )
    finally:
        if isinstance(err, int) and err >= 0:
            os.close(err)
    return proc.pid


def _open_log(path: Path) -> int:
    """The user's own log file, appended to: its folder 0700, the file 0600, never through a
    symlink (someone else's planted link must not redirect our writes)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
