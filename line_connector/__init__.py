"""line-connector: LINE Messaging API, NXCloud and Sobot actions.

    from line_connector import run_action, InputError, ActionError
    output = run_action("line_send_push", asset, inputs)

The heavy parts (requests, jsonschema, the vendor modules, the sandbox) are
imported only when an action runs, so importing this package is cheap.
"""
from .errors import ActionError, InputError, ManifestError

__version__ = "0.1.0"
__all__ = ["run_action", "InputError", "ActionError", "ManifestError", "__version__"]


def run_action(name, asset=None, inputs=None, **options):
    """Run action ``name``; see ``line_connector.runner.run_action``."""
    from .runner import run_action as _run

    return _run(name, asset, inputs, **options)
