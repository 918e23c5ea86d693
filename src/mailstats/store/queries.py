"""Named SQL blocks, loaded once per dialect at start-up.

Shared queries live in `queries/*.sql`; a file of the same name in `queries/<dialect>/`
overrides blocks by name. Parameters are written `:name`; PostgreSQL gets `%(name)s`.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<!:):(\w+)")


def _blocks(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


def load(dialect: str) -> dict[str, str]:
    """Every named query for `dialect`, with its placeholders in that dialect's style."""
    root = resources.files("mailstats.store") / "queries"
    found: dict[str, str] = {}
    for folder in (root, root / dialect):
        if not folder.is_dir():
            continue  # a dialect that overrides nothing has no folder
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql"):
                found.update(_blocks(entry.read_text(encoding="utf-8")))
    if dialect == "postgres":
        found = {name: _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")) for name, sql in found.items()}
    return found
