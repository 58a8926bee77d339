"""Every verb's `--help` shows at least one example, as the README promises."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from thrifty.cli import main


def verbs(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under `group`, groups included (their --help is read too)."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from verbs(command, (*path, name))


def test_every_verb_has_an_example_that_names_it() -> None:
    runner = CliRunner()
    missing = []
    all_verbs = list(verbs(main))
    assert len(all_verbs) > 30  # the walk really reaches the subcommands
    for path in all_verbs:
        result = runner.invoke(main, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        text = result.output
        examples = text.partition("Example")[2]
        # an example is a line that runs this very verb: `thrifty <path> ...`
        runs_it = any(
            line.strip().startswith(f"thrifty {' '.join(path)}")
            or f"| thrifty {' '.join(path)}" in line
            for line in examples.splitlines()
        )
        if not examples or not runs_it:
            missing.append(" ".join(path))
    assert not missing, f"--help without an example of the verb itself: {missing}"
