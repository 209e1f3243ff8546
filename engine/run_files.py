"""Files a killed run left behind: probability maps written under a run's own name
(``<stem>.run-<pid>-<id>.tif`` and its ``.partial.tif``) whose process is gone (issue 30,
item 7). :func:`engine.survey.infer_orthomosaic` removes them before it writes its own."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

#: A run file untouched this long whose process is gone is a killed run's leftover.
STALE_RUN_FILE_S = 600


def remove_stale_run_files(out_path: Path, *, now: float | None = None) -> list[Path]:
    """Delete what killed runs left beside ``out_path``: ``<stem>.run-<pid>-<id>.tif`` and
    its ``.partial.tif`` whose process ``pid`` is not running on this machine and that were
    not written for :data:`STALE_RUN_FILE_S` (a run on another machine sharing the folder
    keeps writing its file, so it is never taken for dead). Returns the files removed."""
    now = time.time() if now is None else now
    pattern = re.compile(re.escape(out_path.stem) + r"\.run-(\d+)-[0-9a-f]+(\.partial)?\.tif$")
    removed = []
    for f in out_path.parent.glob(f"{out_path.stem}.run-*.tif"):
        hit = pattern.match(f.name)
        if not hit:
            continue
        pid = int(hit.group(1))
        try:
            age = now - f.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid() or age < STALE_RUN_FILE_S or _pid_alive(pid):
            continue
        f.unlink(missing_ok=True)
        removed.append(f)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or an absurd pid): leave its file alone
    return True
