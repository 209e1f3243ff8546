"""The documentation site's checks (issue 31): command lines on any page must name real
commands and options, and every environment variable the code reads is documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
HOOKS = Path(__file__).resolve().parents[2] / "deploy" / "docs_hooks.py"


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_command_or_option_the_cli_does_not_know_is_a_problem(hooks):
    page = """
```bash
crackwatch export --site "North cut" --format gpkg --out north.gpkg
crackwatch site add "North cut" --profile slope --crs EPSG:32633 \\
    --inbox /data/inbox --colour red
crackwatch frobnicate --now
```
Also `crackwatch survey retry 17`, `crackwatch survey retry\\|skip ID` and
`crackwatch run --sight X`.
"""
    problems = hooks.check_commands(page, "page.md")
    assert len(problems) == 3, problems
    assert "`crackwatch site add` has no option --colour" in problems[0]
    assert "no command `crackwatch frobnicate`" in problems[1]
    assert "`crackwatch run` has no option --sight" in problems[2]


def test_the_references_are_generated_from_the_code(hooks):
    hooks._PROBLEMS.clear()
    cli = hooks.cli_reference()
    assert "#### `crackwatch site add`" in cli and "`--profile`" in cli
    settings = hooks.settings_reference()
    assert "`CRACKWATCH_DATABASE_URL`" in settings and "`CRACKWATCH_WEBHOOK_URL`" in settings
    assert hooks._PROBLEMS == []  # every variable the code reads is documented
    schema = hooks.schema_reference()
    assert "### `alert`" in schema and "`max_width_mm`" in schema
