"""Where the pack keeps files between runs: the cache directory.

``$LINE_CONNECTOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/line-connector``, else
``~/.cache/line-connector`` (``%LOCALAPPDATA%`` on Windows). Shared state
(tokens, retry-key memory) lives in its ``state`` subdirectory, written only
through ``line_connector.state`` (0700 directories, 0600 files, per-key locks);
``manifest`` keeps its parse verdicts in ``checked``.
"""
import os


def cache_dir():
    explicit = os.environ.get("LINE_CONNECTOR_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") \
        or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "line-connector")
