"""Where the pack's data (manifest, schemas, assets) lives.

A wheel carries them in ``line_connector/_pack/``; an editable install or a
checkout reads them from the repository root, next to this package.
"""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_root():
    bundled = os.path.join(_HERE, "_pack")
    if os.path.isfile(os.path.join(bundled, "connector.yaml")):
        return bundled
    return os.path.dirname(_HERE)


PACK_ROOT = _find_root()
MANIFEST_PATH = os.path.join(PACK_ROOT, "connector.yaml")
SCHEMAS_DIR = os.path.join(PACK_ROOT, "schemas")
ASSETS_DIR = os.path.join(PACK_ROOT, "assets")
