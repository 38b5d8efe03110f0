"""Shell completion for ``containerlease`` (click's own: bash, zsh, fish).

Commands and options complete through click by themselves; this adds the values: catalog image
names for ``provision IMAGE`` and the caller's lease ids and names for every ``LEASE`` argument.
Completion runs on every <TAB>, so it never starts the embedded store, gives up after
:data:`LOOKUP_TIMEOUT` and turns every failure into "no suggestions".

Enable it with ``eval "$(_CONTAINERLEASE_COMPLETE=bash_source containerlease)"`` (``zsh_source``,
``fish_source``); see README.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import click
from click.shell_completion import CompletionItem

from containerlease_tui.config import Settings

LOOKUP_TIMEOUT: Final = 2.0
"""Seconds a lease lookup may take before completion offers nothing."""


def _settings(ctx: click.Context) -> Settings | None:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else None


def complete_image(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """The catalog's image names (no I/O: they are in the settings)."""
    settings = _settings(ctx)
    if settings is None:
        return []
    return sorted(name for name in settings.images if name.startswith(incomplete))


def complete_lease(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The caller's active leases: each id (help: name, image, status), then each name."""
    settings = _settings(ctx)
    if settings is None:
        return []
    with contextlib.suppress(Exception):  # completion must never print a traceback
        return asyncio.run(_leases(settings, incomplete))
    return []


async def _leases(settings: Settings, incomplete: str) -> list[CompletionItem]:
    from containerlease_tui.embedded import resolve
    from containerlease_tui.service_api import LeaseServiceAPI, connect_service, service_socket

    service: LeaseServiceAPI
    if service_socket(settings) is not None:
        service = await connect_service(settings)  # the daemon's client
    else:
        target = resolve(settings, start=False)
        if target.embedded is not None and not target.embedded.running:
            return []
        service = await connect_service(target.settings)
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            leases = await service.list()
    finally:
        await service.close()
    active = [x for x in leases if x.status.is_active]
    ids = [
        CompletionItem(x.id, help=f"{x.name} ({x.image}, {x.status.value})")
        for x in active
        if x.id.startswith(incomplete)
    ]
    names = [
        CompletionItem(x.name, help=x.id)
        for x in active
        if x.name.startswith(incomplete) and x.name != x.id
    ]
    return ids + names


def wire(group: click.Group) -> None:
    """Give every ``lease`` argument lease completion and ``provision IMAGE`` image completion.

    Done once over the finished command tree (rather than on each decorator) so that commands
    added later get it too. ``_custom_shell_complete`` is what click's ``shell_complete=``
    argument sets.
    """
    for command in group.commands.values():
        if isinstance(command, click.Group):
            wire(command)
            continue
        for param in command.params:
            if not isinstance(param, click.Argument):
                continue
            if param.name == "lease":
                param._custom_shell_complete = complete_lease
            elif param.name == "image" and command.name == "provision":
                param._custom_shell_complete = complete_image
