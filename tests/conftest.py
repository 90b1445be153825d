"""Shared fixtures. Tests never touch the internet: unit tests mock HTTP
with ``responses``; end-to-end tests use the embedded sandbox on 127.0.0.1.
The ``connector`` and ``line_sandbox`` fixtures come from the pack's own
pytest plugin (line_connector.pytest_plugin)."""
import pytest

from helpers import run_cli


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _fresh_oauth_cache():
    """OAuth tokens are cached per process; tests must not share them."""
    from line_connector.actions.line import auth

    auth._CACHE.clear()
    yield
    auth._CACHE.clear()


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path, monkeypatch):
    """Each test gets its own token cache dir (CLI subprocesses inherit it),
    so no test reads another's Sobot token or writes to ~/.cache."""
    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(tmp_path / "line-connector-cache"))
