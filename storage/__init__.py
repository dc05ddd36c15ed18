"""The kernel-search database: schema, the Store that writes it, queries, and dispatch tables.

The query frames (storage.queries) need pandas; they are re-exported here lazily, so that importing
storage (every CLI command, every tuner process) does not pay for pandas until a frame is asked for.
"""

from storage import queue
from storage.engine import DEFAULT_URL, ENV_VAR, StorageError, resolve_url
from storage.export import ImportSummary, build_table, import_table
from storage.models import Base, Fingerprint, ModelShape, Shape, Study, Trial, Winner
from storage.store import Store, StudyRef, study_name
from storage.table import DispatchTable, TableError, dump_table, load_table, parse_table

_QUERIES = ("failures_frame", "importances_frame", "known_gpus", "known_models", "known_ops", "studies_frame",
            "steps_frame", "trials_frame", "winners_frame")


def __getattr__(name: str):
    if name in _QUERIES:
        from storage import queries

        return getattr(queries, name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")


__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Base",
    "DispatchTable",
    "Fingerprint",
    "ImportSummary",
    "ModelShape",
    "Shape",
    "Store",
    "StorageError",
    "Study",
    "StudyRef",
    "TableError",
    "Trial",
    "Winner",
    "build_table",
    "dump_table",
    "failures_frame",
    "importances_frame",
    "import_table",
    "known_gpus",
    "known_models",
    "known_ops",
    "load_table",
    "parse_table",
    "queue",
    "resolve_url",
    "steps_frame",
    "studies_frame",
    "study_name",
    "trials_frame",
    "winners_frame",
]
