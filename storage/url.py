"""Which database: the --db argument, else $KERNEL_SEARCH_DB, else a SQLite file here. Imports nothing
of SQLAlchemy, so that `tune --gpus` can pass the URL to its workers before its own imports."""

from __future__ import annotations

import os

DEFAULT_URL = "sqlite:///kernel_search.db"
ENV_VAR = "KERNEL_SEARCH_DB"


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else $KERNEL_SEARCH_DB, else sqlite:///kernel_search.db."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL
