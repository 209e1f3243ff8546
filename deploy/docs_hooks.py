"""MkDocs hooks of the CrackWatch documentation site (``deploy/mkdocs.yml``).

Reference pages that cannot drift from the code, generated at build time:

* ``<!-- generated: cli -->``: every ``crackwatch`` command with its options and help, read
  from the Typer app (:data:`jobs.cli.main.app`).
* ``<!-- generated: settings -->``: the ``CRACKWATCH_*`` environment variables: the fields of
  :class:`jobs.settings.Settings` and those documented in ``deploy/crackwatch.env.example``;
  a variable the code reads that neither names fails the build.
* ``<!-- generated: schema -->``: the store's tables and columns from the SQLAlchemy models.

And a check: every ``crackwatch ...`` command line on any page (code blocks and inline code)
must name a real command and only options it has; otherwise the build fails (with
``mkdocs build --strict`` and without).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]
_PROBLEMS: list[str] = []


# ------------------------------------------------------------------------------ CLI
# Typer vendors its own click (typer._click): commands are recognised by their attributes.
def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")


def _is_option(p: Any) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _cli() -> Any:
    import typer.main

    from jobs.cli.main import app

    return typer.main.get_command(app)


def _options(cmd: Any) -> set[str]:
    names = {"--help"}
    for p in cmd.params:
        if _is_option(p):
            names.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("--"))
    return names


def _walk(group: Any, path: tuple[str, ...] = ()):
    yield path, group
    if _is_group(group):
        for name in sorted(group.commands):
            yield from _walk(group.commands[name], (*path, name))


def cli_reference() -> str:
    """Markdown of every command: usage, help text, options (type, default, help)."""
    root = _cli()
    out = []
    for path, cmd in _walk(root):
        if not path or cmd.hidden:
            continue
        title = "crackwatch " + " ".join(path)
        level = "###" if len(path) == 1 else "####"
        out.append(f"{level} `{title}`\n")
        ctx = _context(cmd, title)
        usage = cmd.get_usage(ctx).replace("Usage: ", "")
        out.append(f"```text\n{usage}\n```\n")
        if cmd.help:
            out.append(_clean_help(cmd.help) + "\n")
        rows = []
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "argument":
                rows.append((f"`{(p.metavar or p.name or '').upper()}`", "argument", "",
                             (getattr(p, "help", None) or "").replace("\n", " ")))
            elif _is_option(p) and not p.hidden:
                names = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
                default = "" if p.default in (None, False, (), []) or callable(p.default) \
                    else f"`{p.default}`"
                rows.append((names, _type_name(p, ctx), default, (p.help or "").replace("|", "\\|")
                             .replace("\n", " ")))
        if rows:
            out.append("| option | type | default | what |\n|---|---|---|---|")
            out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
            out.append("")
    return "\n".join(out)


def _type_name(p: Any, ctx: Any) -> str:
    t = getattr(p, "display_type", "")
    try:
        t = t(ctx) if callable(t) else t
    except TypeError:
        t = getattr(getattr(p, "type", None), "name", "")
    return str(t or "").strip("<>")


def _context(cmd: Any, title: str) -> Any:
    import typer._click as tclick  # noqa: PLC2701 - the click Typer's commands belong to

    return tclick.Context(cmd, info_name=title)


def _clean_help(text: str) -> str:
    # Typer/Rich markup and click's \b paragraph markers are not Markdown
    text = text.replace("\b\n", "").replace("\b", "")
    return re.sub(r"\[/?(bold|green|red|yellow|dim|cyan|magenta)\]", "", text)


_CMD_LINE = re.compile(r"(?m)^\s*(?:\$\s*)?(?:printf [^|]*\|\s*)?(crackwatch\s[^#\n]*)")
_CMD_SPAN = re.compile(r"`(crackwatch\s[^`]+)`")


def check_commands(markdown: str, page: str) -> list[str]:
    """Problems with the ``crackwatch`` command lines of one page: unknown commands and
    options a command does not have."""
    root = _cli()
    problems = []
    lines = []
    for block in re.findall(r"```(?:bash|sh|console|text)?\n(.*?)```", markdown, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [m.group(1) for m in _CMD_LINE.finditer(joined)]
    lines += _CMD_SPAN.findall(re.sub(r"```.*?```", "", markdown, flags=re.S))
    for line in lines:
        try:
            words = shlex.split(line.replace("\\|", "|").split(" # ")[0].split(";")[0]
                                .split("|")[0])
        except ValueError:
            words = line.split()
        cmd: Any = root
        path = []
        for w in words[1:]:
            if _is_group(cmd) and not w.startswith("-"):
                if w not in cmd.commands:
                    if w.isupper() or w.startswith(("<", "[")) or w == "...":
                        break  # a placeholder: `crackwatch COMMAND --help`
                    problems.append(f"{page}: `{line.strip()}`: no command "
                                    f"`crackwatch {' '.join([*path, w])}`")
                    break
                cmd = cmd.commands[w]
                path.append(w)
                continue
            if w.startswith("--"):
                opt = w.split("=")[0]
                if opt not in _options(cmd) and opt != "--...":
                    problems.append(f"{page}: `{line.strip()}`: `crackwatch {' '.join(path)}` "
                                    f"has no option {opt}")
    return problems


# ------------------------------------------------------------------------------ settings
def settings_reference() -> str:
    """The environment variables: the settings classes' fields, then the rest of the
    documented example file; a variable read in the code and named nowhere is a problem."""
    from jobs.settings import Settings

    rows, seen = [], set()
    for name, field in Settings.model_fields.items():
        env = f"CRACKWATCH_{name.upper()}"
        seen.add(env)
        default = field.default if field.default_factory is None else "(computed)"
        rows.append((env, "" if default is None else str(default), "",
                     field.description or ""))
    example = (ROOT / "deploy" / "crackwatch.env.example").read_text(encoding="utf-8")
    comment: list[str] = []
    for line in example.splitlines():
        m = re.match(r"#?\s*(CRACKWATCH_[A-Z_]+)=(\S*)\s*(?:#\s*(.*))?", line)
        if m:
            if m.group(1) not in seen:
                seen.add(m.group(1))
                value = "" if "CHANGE" in m.group(2) else m.group(2)
                rows.append((m.group(1), "", value, " ".join(comment) or m.group(3) or ""))
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
        else:
            comment = []
    used = set()
    for pkg in ("engine", "geodata", "jobs", "dashboard"):
        for py in (ROOT / pkg).rglob("*.py"):
            used.update(re.findall(r"CRACKWATCH_[A-Z][A-Z_]*[A-Z]",
                                   py.read_text(encoding="utf-8")))
    # GeoTIFF tags the demo writes, not environment variables
    internal = {"CRACKWATCH_SIMULATED", "CRACKWATCH_DESCRIPTION"}
    extra = {
        "CRACKWATCH_MALLOC_TUNING": "0 turns off the allocator tuning of engine/allocator.py "
                                    "(see Performance).",
        "CRACKWATCH_MAX_RASTER_PIXELS": "Largest raster a survey may declare, pixels "
                                        "(default 4,000,000,000; geodata.plausibility).",
        "CRACKWATCH_WEIGHTS_DIR": "Folder of model cards the dashboard's Models page reads "
                                  "before the shipped ones.",
        "CRACKWATCH_GIT_SHA": "The commit a training run records in its card where the "
                              "checkout has no .git (engine.train).",
    }
    for env, text in extra.items():
        if env not in seen:
            seen.add(env)
            rows.append((env, "", "", text))
    missing = sorted(used - seen - internal)
    _PROBLEMS.extend(f"settings: {v} is read by the code but not documented (add it to "
                     f"deploy/crackwatch.env.example)" for v in missing)
    def cell(v: str) -> str:
        return f"`{v}`" if v else ""

    table = ["| variable | default | example | what |", "|---|---|---|---|"]
    table += [f"| `{a}` | {cell(b)} | {cell(c)} | {d.replace('|', '/')} |"
              for a, b, c, d in rows]
    return "\n".join(table)


# ------------------------------------------------------------------------------ schema
def schema_reference() -> str:
    """Every table of the store: its model's docstring summary and its columns."""
    from geodata.store.models import Base

    by_table = {m.class_.__tablename__: m.class_ for m in Base.registry.mappers}
    out = []
    for name, table in sorted(Base.metadata.tables.items()):
        cls = by_table.get(name)
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ") if cls else ""
        out.append(f"### `{name}`\n")
        if doc:
            out.append(doc + "\n")
        out.append("| column | type | null | key |\n|---|---|---|---|")
        for col in table.columns:
            key = "primary" if col.primary_key else ", ".join(
                f"-> `{fk.target_fullname}`" for fk in col.foreign_keys)
            out.append(f"| `{col.name}` | {_type(col.type)} | "
                       f"{'yes' if col.nullable else 'no'} | {key} |")
        out.append("")
    return "\n".join(out)


def _type(t: Any) -> str:
    try:
        return str(t).replace("|", "/")
    except Exception:  # noqa: BLE001 - custom types without a generic compile
        return type(t).__name__


# ------------------------------------------------------------------------------ hooks
GENERATORS = {"cli": cli_reference, "settings": settings_reference, "schema": schema_reference}


def on_pre_build(config: Any) -> None:
    _PROBLEMS.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    _PROBLEMS.extend(check_commands(markdown, page.file.src_uri))
    for key, make in GENERATORS.items():
        marker = f"<!-- generated: {key} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


def on_post_build(config: Any) -> None:
    if _PROBLEMS:
        raise PluginError("the documentation does not match the code:\n  "
                          + "\n  ".join(_PROBLEMS))
