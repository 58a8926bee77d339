"""CLI verbs that live in their own modules, registered on the main group."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from thrifty.commands.ab import ab
    from thrifty.commands.alerts import alerts
    from thrifty.commands.audit import audit
    from thrifty.commands.autopilot import autopilot
    from thrifty.commands.bench import bench
    from thrifty.commands.cache import cache
    from thrifty.commands.distill import distill
    from thrifty.commands.doctor import doctor
    from thrifty.commands.eval import eval_group
    from thrifty.commands.export import export, quantize
    from thrifty.commands.finetune import finetune
    from thrifty.commands.keys import keys
    from thrifty.commands.models_cmd import models_add, models_remove
    from thrifty.commands.prices import prices
    from thrifty.commands.review import review
    from thrifty.commands.route import route
    from thrifty.commands.tco import tco
    from thrifty.commands.usage import usage

    main.add_command(ab)
    main.add_command(alerts)
    main.add_command(audit)
    main.add_command(autopilot)
    main.add_command(bench)
    main.add_command(cache)
    main.add_command(distill)
    main.add_command(doctor)
    main.add_command(eval_group)
    main.add_command(export)
    main.add_command(finetune)
    main.add_command(keys)
    main.add_command(prices)
    main.add_command(quantize)
    main.add_command(review)
    main.add_command(route)
    main.add_command(tco)
    main.add_command(usage)
    models = main.commands["models"]  # the group lives in cli.py; add and remove live here
    assert isinstance(models, click.Group)
    models.add_command(models_add)
    models.add_command(models_remove)
