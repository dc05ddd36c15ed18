"""The storage tests' database fixtures (SQLite here), for the tuner tests that read a filled database."""

from tests.storage import conftest as _storage

filled = _storage.filled
filled_template = _storage.filled_template
store = _storage.store
