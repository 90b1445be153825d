"""Exit codes and result printing, shared by every command and server.

The command line, the HTTP service, the MCP server and the Turbine export
all end the same way (SPEC section 4: exit 0 success, 1 refused or
unreachable, 2 invalid input with nothing sent) and print JSON the same way.
They live here, below all of them, so none of those modules has to import
another one to say how it ended.
"""
from . import jsontext

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2

#: what to install for the service's extras (waitress, redis, prometheus_client):
#: one text for every module that needs them, and one that works from a checkout
SERVICE_EXTRA_HINT = ("pip install '.[service]' in a checkout of the pack (the directory holding setup.py), "
                      "or pip install 'line-connector[service]' where the pack is published")


def print_json(obj, stream):
    """Strict JSON always (SPEC 7): never NaN or Infinity (a non-finite
    number, should one reach here, prints as null), and a string the stream
    cannot encode (a lone surrogate) is printed \\u-escaped, not a crash."""
    try:
        stream.write(jsontext.dumps(obj) + "\n")
    except UnicodeEncodeError:
        stream.write(jsontext.dumps(obj, ascii=True) + "\n")
    stream.flush()


def print_error(message, details=(), stream=None):
    """The JSON error object every command prints on stderr:
    ``{"error": message, "details": [{"path", "message"}, ...]}``."""
    import sys

    print_json({"error": message, "details": list(details)}, stream or sys.stderr)
