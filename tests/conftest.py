"""Shared fixtures. Tests never touch the internet: unit tests mock HTTP
with ``responses``; end-to-end tests use the embedded sandbox on 127.0.0.1.
The ``connector`` and ``line_sandbox`` fixtures come from the pack's own
pytest plugin (line_connector.pytest_plugin)."""
import pytest

from helpers import run_cli
from redis_server import redis_server, redis_url  # noqa: F401  (real redis-server fixtures, issue 14)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _fresh_state_store():
    """Tokens live in the state store (files in the per-test cache dir
    below); tests must not share its in-process objects either."""
    from line_connector import state

    state.forget()
    yield
    state.forget()


@pytest.fixture(autouse=True)
def _work_in_a_temp_dir(tmp_path, monkeypatch):
    """Each test runs in its own empty directory, so a relative path in an
    action's example (line_get_message_content's ``save_to``) never writes
    into the checkout."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path, monkeypatch):
    """Each test gets its own token cache dir (CLI subprocesses inherit it),
    so no test reads another's Sobot token or writes to ~/.cache."""
    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(tmp_path / "line-connector-cache"))
