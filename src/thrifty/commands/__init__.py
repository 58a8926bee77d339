"""CLI verbs that live in their own modules, registered on the main group."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from thrifty.commands.route import route
    from thrifty.commands.tco import tco

    main.add_command(route)
    main.add_command(tco)
