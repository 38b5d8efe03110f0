"""The ``containerlease`` command (skeleton; filled in by the leases work)."""

from __future__ import annotations

import sys

import click

from containerlease_tui import __version__
from containerlease_tui.config import ConfigError, load_settings


@click.group(invoke_without_command=True)
@click.version_option(__version__, prog_name="containerlease")
def cli() -> None:
    """Lease Docker containers for a fixed time on a shared dev box."""


def main() -> None:
    # Config is read before parsing, so even --help reports a broken config file.
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"containerlease: {exc}", err=True)
        sys.exit(2)
    try:
        cli.main(prog_name="containerlease", obj=settings)
    except KeyboardInterrupt:
        sys.exit(130)
