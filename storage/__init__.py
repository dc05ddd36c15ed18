"""The kernel-search database: schema, the Store that writes it, queries, and dispatch tables.

Every name is re-exported lazily: importing storage (every CLI command, every tuner process) pays for
a module (SQLAlchemy, Alembic, pandas for the query frames) only when one of its names is asked for.
"""

import importlib

# Each name and the module it lives in: imported on first use (PEP 562), so that `import storage.url`
# (the CLI before it starts `tune --gpus` workers) does not pay for SQLAlchemy, Alembic and the rest.
_WHERE = {
    "DEFAULT_URL": "url", "ENV_VAR": "url", "resolve_url": "url", "StorageError": "engine",
    "ImportSummary": "export", "build_table": "export", "import_table": "export",
    "Base": "models", "Fingerprint": "models", "ModelShape": "models", "Shape": "models", "Study": "models",
    "Trial": "models", "Winner": "models",
    "Store": "store", "StudyRef": "store", "study_name": "store",
    "DispatchTable": "table", "TableError": "table", "dump_table": "table", "load_table": "table",
    "parse_table": "table",
    "failures_frame": "queries", "importances_frame": "queries", "known_gpus": "queries", "known_models": "queries",
    "known_ops": "queries", "studies_frame": "queries", "steps_frame": "queries", "trials_frame": "queries",
    "winners_frame": "queries",
}


_MODULES = ("queue", "optuna_rows")  # submodules used as namespaces (storage.queue.claim_config)


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"storage.{name}")
    if name in _WHERE:
        return getattr(importlib.import_module(f"storage.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")


__all__ = sorted([*_WHERE, *_MODULES])
