"""Fixtures of the integration tests: `dialer` (tests.integration.support.Dialer) and
`private_postgres` (tests/integration/pgserver.py); the Asterisk sandboxes come from
tests/conftest.py."""
import pytest

from tests.integration.pgserver import private_postgres  # noqa: F401  (pytest fixture)
from tests.integration.support import Dialer


@pytest.fixture
def dialer(tmp_path):
    d = Dialer(tmp_path)
    yield d
    d.close()
