"""The ``crackwatch`` command line (typer).

One package, one room per group of commands (issue 17):

- :mod:`jobs.cli.common`: consoles, the one error printer (exit 2), shared options, the store a
  command opens, the site it names, the running command line; every other module imports it
  and nothing else here (but the ``--executor`` options of :mod:`jobs.cli.ray`);
- :mod:`jobs.cli.main`: the ``app`` and its groups, training; it registers the others at
  its end: :mod:`jobs.cli.models` (``evaluate``, ``models``), :mod:`jobs.cli.bench`
  (``bench model|train|infer``), :mod:`jobs.cli.infer` (``infer``);
- :mod:`jobs.cli.pipeline` (sites, surveys, run, scheduler, demo), :mod:`jobs.cli.alerting`
  (site alert settings, ``alerts check``), :mod:`jobs.cli.store` (db, export),
  :mod:`jobs.cli.dashboard`, :mod:`jobs.cli.users`.

``crackwatch`` (the console script) and ``python3 -m jobs.cli`` run :data:`app`.
"""

from jobs.cli.main import app

__all__ = ["app"]
