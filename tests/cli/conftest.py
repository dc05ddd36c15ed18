from tests.storage.conftest import filled, filled_template, store  # noqa: F401 - shared fixtures
