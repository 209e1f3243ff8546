"""Which shipped model serves each site profile: ``engine/profile_models.json``.

Torch-free (listing commands read it without loading the model stack); the registry's
:data:`engine.registry.PROFILE_MODELS` is this file's table, and the dashboard, which does not
import the engine, reads the same file. Change the shipped model of a profile by editing the
file (each profile's model must have its card in ``engine/weights/``; a test checks it).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import ModelCardError

__all__ = ["PROFILE_MODELS_FILE", "SITE_PROFILES", "read_profile_models"]

#: The profile -> model table.
PROFILE_MODELS_FILE = Path(__file__).resolve().parent / "profile_models.json"
#: The site profiles (the same as ``geodata.store.models.PROFILES``; a test checks it).
SITE_PROFILES = ("slope", "structure")


def read_profile_models(path: Path = PROFILE_MODELS_FILE) -> dict[str, str]:
    """``{profile: model name}`` for every site profile, from ``path``.

    Raises:
        ModelCardError: the file is unreadable, or does not name one model per profile.
    """
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"{path} (which model serves each site profile) is not readable "
                             f"JSON ({exc}); restore it from git.") from exc
    if not isinstance(table, dict) or sorted(table) != sorted(SITE_PROFILES) or not all(
            isinstance(v, str) and v for v in table.values()):
        raise ModelCardError(f"{path} must map each site profile ({', '.join(SITE_PROFILES)}) "
                             f"to a model name, got {table!r}; restore it from git.")
    return table
