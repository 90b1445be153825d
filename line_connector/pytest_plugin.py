"""pytest fixtures for playbook authors (registered through the ``pytest11``
entry point, so installing the pack makes them available):

* ``line_sandbox``: a running sandbox, fresh state per test;
* ``connector``: runs actions like ``run_action``; ``connector.run(name,
  asset, inputs)`` works with ``responses`` mocks, and
  ``connector.run(..., sandbox=line_sandbox)`` against the sandbox.
"""
import pytest


class ConnectorRunner:
    """Thin handle over ``run_action`` with the errors re-exported."""

    from .errors import ActionError, InputError  # noqa: E402  (handy in tests: connector.InputError)

    def run(self, name, asset=None, inputs=None, **options):
        from .runner import run_action

        return run_action(name, asset, inputs, **options)

    def actions(self):
        from .manifest import manifest

        return list(manifest().actions)


@pytest.fixture
def connector():
    return ConnectorRunner()


@pytest.fixture
def line_sandbox():
    from .sandbox import Sandbox

    with Sandbox() as sandbox:
        yield sandbox
