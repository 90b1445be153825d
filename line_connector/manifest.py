"""Loads connector.yaml, checks it against its meta-schema and the files it
names, and resolves action classes and assets on demand.

An inconsistent pack is a loud ``ManifestError`` naming the entry: a missing
schema file, an unknown asset, a class that is not there. File existence is
checked at load (cheap); a class is imported only when its action runs (or by
``check_all``, which the tests call for every action).

Start-up speed: parsing YAML and meta-validating cost more than the rest of
a CLI run, and a pack's files rarely change. So the *verdict* is remembered:
a file whose exact bytes (with the meta-schema's and the pack's version) were
already parsed and validated is read back as JSON from the cache directory.
Any change to the file gives a new digest and a full, loud validation.
"""
import hashlib
import importlib
import json
import os
from functools import lru_cache

from . import __version__
from .errors import ManifestError
from .paths import ASSETS_DIR, MANIFEST_PATH, PACK_ROOT, SCHEMAS_DIR

ACTIONS_PACKAGE = "line_connector.actions"


def _parse_yaml(raw, path):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(raw.decode("utf-8"), Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ManifestError("%s is not valid YAML: %s" % (path, exc)) from None


def _meta_validate(relpath, data, what):
    from .validation import errors_to_details, iter_errors

    details = errors_to_details(iter_errors(relpath, data), "")
    if details:
        lines = "; ".join("%s: %s" % (d["path"] or "(top)", d["message"]) for d in details)
        raise ManifestError("%s does not match schemas/%s: %s" % (what, relpath, lines))


def _verdict_path(raw, meta_relpath):
    from .filecache import cache_dir

    with open(os.path.join(SCHEMAS_DIR, meta_relpath), "rb") as fh:
        meta = fh.read()
    digest = hashlib.sha256(b"\0".join([__version__.encode(), meta, raw])).hexdigest()
    return os.path.join(cache_dir(), "checked", digest + ".json")


def load_checked_yaml(path, meta_relpath, what):
    """Parse a YAML file and validate it against ``schemas/<meta_relpath>``,
    or read the result of an earlier identical parse-and-validate."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ManifestError("file not found: %s" % path) from None
    verdict = _verdict_path(raw, meta_relpath)
    try:
        with open(verdict, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        pass
    data = _parse_yaml(raw, path)
    _meta_validate(meta_relpath, data, what)
    _remember(verdict, data)
    return data


def _remember(path, data):
    """Best effort: a read-only or missing cache only costs speed. The
    directories are made 0700 whatever the umask, as every directory the
    pack creates (the cache root may be made here first)."""
    import tempfile

    from .state import _make_private_dirs

    try:
        _make_private_dirs(os.path.dirname(path))
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass


class _Frozen:
    """An immutable record compared and hashed by its ``KEYS`` (a plain
    class: importing ``dataclasses`` cost ~10-20 ms of every CLI run)."""

    FIELDS = KEYS = ()

    def __init__(self, *args, **kwargs):
        names = self.FIELDS
        if len(args) > len(names):
            raise TypeError("%s takes at most %d fields" % (type(self).__name__, len(names)))
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError("%s: unexpected or repeated field %s" % (type(self).__name__, key))
            values[key] = value
        for name in names:
            if name not in values:
                if name not in self.DEFAULTS:
                    raise TypeError("%s: missing field %s" % (type(self).__name__, name))
                values[name] = self.DEFAULTS[name]
            object.__setattr__(self, name, values[name])

    DEFAULTS = {}

    def __setattr__(self, name, value):
        raise AttributeError("%s is immutable" % type(self).__name__)

    __delattr__ = __setattr__

    def _key(self):
        return tuple(getattr(self, name) for name in self.KEYS)

    def __eq__(self, other):
        return self._key() == other._key() if type(other) is type(self) else NotImplemented

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.FIELDS))


def _action_dirs():
    """Where an action's module may be: ``actions/`` next to the package (a
    checkout, an editable install), or ``line_connector/actions/`` (a wheel)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return (os.path.join(os.path.dirname(here), "actions"), os.path.join(here, "actions"))


def _list_files(directory, found):
    """Add to ``found`` the path of every file under ``directory`` that
    ``os.path.isfile`` would accept (a symlink to a file counts, a broken
    one does not), spelt as ``os.path.join`` spells it. A directory that
    cannot be listed adds nothing (its files are then stat-ed one by one)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir():
                _list_files(entry.path, found)
            elif entry.is_file():
                found.add(entry.path)
        except OSError:
            pass


class ActionSpec(_Frozen):
    FIELDS = ("name", "title", "description", "class_path", "inputs", "outputs", "assets", "example")
    KEYS = FIELDS[:-1]  # the example is not part of the identity
    DEFAULTS = {"example": None}

    def load_class(self):
        """Import and return the action class; a ManifestError names this entry."""
        module_name, _, class_name = self.class_path.partition(":")
        try:
            module = importlib.import_module("%s.%s" % (ACTIONS_PACKAGE, module_name))
        except ImportError as exc:
            raise ManifestError("action %s: cannot import module %s: %s"
                                % (self.name, module_name, exc)) from None
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ManifestError("action %s: class %s not found in actions/%s.py"
                                % (self.name, class_name, module_name.replace(".", "/")))
        return cls


class AssetSpec(_Frozen):
    FIELDS = KEYS = ("name", "title", "description", "schema")

    @property
    def secret_fields(self):
        return tuple(k for k, p in self.schema["properties"].items() if p.get("format") == "password")


class Manifest:
    def __init__(self, data, root=PACK_ROOT):
        self.raw = data
        self.root = root
        self.name = data["name"]
        self.title = data["title"]
        self.version = data["version"]
        self.description = data["description"]
        self.asset_names = tuple(data["assets"])
        self.actions = {}
        self._present = set()  # files met listing the directories _check_files looks in
        self._action_dirs = _action_dirs()
        self._schemas_dir = os.path.join(root, "schemas")
        for directory in (self._schemas_dir, *self._action_dirs):
            _list_files(directory, self._present)
        for entry in data["actions"]:
            spec = ActionSpec(
                name=entry["name"], title=entry["title"], description=entry["description"],
                class_path=entry["class"], inputs=entry["inputs"], outputs=entry["outputs"],
                assets=tuple(entry["assets"]), example=entry.get("example"))
            if spec.name in self.actions:
                raise ManifestError("action %s is declared twice" % spec.name)
            self._check_files(spec)
            self.actions[spec.name] = spec

    def _any_file(self, bases, rel):
        """Whether ``os.path.isfile(os.path.join(base, rel))`` holds for one
        of ``bases``, answered from the directory listings taken once when
        one of them holds it (stat-ing 2-3 paths for each of ~100 actions
        cost ~2.5 ms of every run); otherwise (a path written another way, a
        file not listed) each is stat-ed as before. ``base + "/" + rel`` is
        what ``os.path.join`` makes of a relative ``rel``; for an absolute
        one it holds "//", which no listed path does."""
        present = self._present
        if any(base + os.sep + rel in present for base in bases):
            return True
        return any(os.path.isfile(os.path.join(base, rel)) for base in bases)

    def _check_files(self, spec):
        schemas_dir = (self._schemas_dir,)
        for kind in ("inputs", "outputs"):
            rel = getattr(spec, kind)
            if not self._any_file(schemas_dir, rel):
                raise ManifestError("action %s: %s schema schemas/%s does not exist"
                                    % (spec.name, kind, rel))
        for asset in spec.assets:
            if asset not in self.asset_names:
                raise ManifestError("action %s: asset %s is not declared in the manifest's assets"
                                    % (spec.name, asset))
        module = spec.class_path.partition(":")[0].replace(".", os.sep)
        if not self._any_file(self._action_dirs, module + ".py"):
            raise ManifestError("action %s: class module actions/%s.py does not exist"
                                % (spec.name, module))

    def action(self, name):
        try:
            return self.actions[name]
        except KeyError:
            raise KeyError(name) from None

    @lru_cache(maxsize=None)
    def asset(self, name):
        if name not in self.asset_names:
            raise ManifestError("asset %s is not declared in the manifest" % name)
        path = os.path.join(self.root, "assets", name + ".yaml")
        if not os.path.isfile(path):
            raise ManifestError("asset %s: file assets/%s.yaml does not exist" % (name, name))
        data = load_checked_yaml(path, "meta/asset.schema.json", "assets/%s.yaml" % name)
        if data["name"] != name:
            raise ManifestError("assets/%s.yaml declares name %s" % (name, data["name"]))
        return AssetSpec(name=name, title=data["title"], description=data["description"],
                         schema=data["inputs"])

    def check_all(self):
        """Import every class and load every schema and asset: loud on any mismatch."""
        from .action import Action
        from .validation import check_schema_file, validator_for

        for name in self.asset_names:
            self.asset(name)
        for spec in self.actions.values():
            cls = spec.load_class()
            if not (isinstance(cls, type) and issubclass(cls, Action)):
                raise ManifestError("action %s: %s is not an Action subclass" % (spec.name, spec.class_path))
            for rel in (spec.inputs, spec.outputs):
                check_schema_file(rel)
                validator_for(rel)
        return True


def load_manifest(path=None):
    """Parse and check a manifest file (the pack's own by default)."""
    path = path or MANIFEST_PATH
    data = load_checked_yaml(path, "meta/connector.schema.json", os.path.basename(path))
    return Manifest(data, root=os.path.dirname(os.path.abspath(path)))


@lru_cache(maxsize=1)
def manifest():
    """The pack's manifest, loaded once per process."""
    return load_manifest()


__all__ = ["ActionSpec", "AssetSpec", "Manifest", "load_manifest", "manifest", "SCHEMAS_DIR", "ASSETS_DIR"]
