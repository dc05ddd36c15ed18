"""The kernel-search database: schema, the Store that writes it, and the dispatch-table format.

Queries (pandas frames) live in storage.queries and table export/import in storage.export; both are
imported lazily by their users, so that importing storage does not pull pandas.
"""

from storage.engine import DEFAULT_URL, ENV_VAR, StorageError, resolve_url
from storage.models import Base, Fingerprint, ModelShape, Shape, Study, Trial, Winner
from storage.store import Store, StudyRef, study_name
from storage.table import DispatchTable, TableError, dump_table, load_table, parse_table

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Base",
    "DispatchTable",
    "Fingerprint",
    "ModelShape",
    "Shape",
    "Store",
    "StorageError",
    "Study",
    "StudyRef",
    "TableError",
    "Trial",
    "Winner",
    "dump_table",
    "load_table",
    "parse_table",
    "resolve_url",
    "study_name",
]
