"""Benchmarks against any OpenAI-compatible endpoint, with cost per correct answer.

`suites` loads the questions (built-in benchmarks from their PyPI packages, or JSONL files),
`runner` asks and scores them (`scorers`, `judge`, and `sandbox` for generated code), `store`
keeps every item in ``$THRIFTY_HOME/evals.db``, and `report` / `plot` compare runs.
The CLI is `thrifty eval` (`thrifty.commands.eval`).
"""
