"""``python3 -m jobs.cli``: the same as the ``crackwatch`` command."""

from jobs.cli.main import app

app()
