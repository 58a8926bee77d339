"""The README's snippets run once per `make test`: on its SQLite pass. They exercise the CLI and
the HTTP API as a newcomer meets them; the store under them is covered on both databases by the
rest of the suite, and running them twice would only double their minutes."""

from support import on_postgres

collect_ignore_glob = ["test_*.py"] if on_postgres() else []
