"""What a packager does works: ``python -m build`` makes the sdist and,
from that sdist, the wheel; the sdist alone installs into a fresh virtual
environment whose CLI finds the manifest, schemas and assets under the
single import name ``line_connector`` and pushes to the sandbox from a
directory that is not the checkout.

Offline by design: the build runs with this environment's setuptools
(``--no-isolation``), on a copy of the checkout so the shared tree gets no
build/ or egg-info; the fresh venv (made without pip) borrows this
environment's installed packages, pip and setuptools included, through a
.pth file, so nothing is fetched from a package index. A .pth file's
directories are added to sys.path but their own .pth files are not run, so
the checkout's editable install stays invisible to the venv.
"""
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# what a wheel is built from: every file of these must be in the sdist
BUILD_INPUTS = ("connector.yaml", "schemas", "assets", "actions", "line_connector", "setup.py",
                "pyproject.toml", "LICENSE", "README.md", "MANIFEST.in")
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    "*.pyc", ".pytest_cache", ".hypothesis", "_pack")


def _run(cmd, cwd, **kw):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _source_files():
    found = set()
    for part in BUILD_INPUTS:
        path = os.path.join(REPO, part)
        if os.path.isfile(path):
            found.add(part)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "_pack")]
            for name in files:
                if not name.endswith((".pyc", ".pyo")):
                    found.add(os.path.relpath(os.path.join(root, name), REPO).replace(os.sep, "/"))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel) made by `python -m build`: the wheel is built from the sdist."""
    import importlib.util

    assert importlib.util.find_spec("build"), "`build` is missing: pip install -e '.[test]'"
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(REPO, str(src), ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
         cwd=str(tmp))
    (sdist,) = list((tmp / "dist").glob("line_connector-*.tar.gz"))
    (wheel,) = list((tmp / "dist").glob("line_connector-*.whl"))
    return sdist, wheel


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """A fresh venv with the sdist (not the wheel) installed into it."""
    sdist, _ = built
    tmp = tmp_path_factory.mktemp("pkg")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=str(tmp))
    vpy = venv / "bin" / "python"
    purelib = _run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=str(tmp)).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    with open(os.path.join(purelib, "borrowed_deps.pth"), "w") as fh:
        fh.write("\n".join(sorted(deps)) + "\n")
    _run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
          "--ignore-installed", str(sdist)], cwd=str(tmp))
    return venv, tmp


def test_sdist_carries_everything_a_wheel_is_built_from(built):
    sdist, _ = built
    with tarfile.open(str(sdist)) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = sorted(_source_files() - names)
    assert missing == [], "MANIFEST.in leaves out: %s" % missing[:20]
    assert "docs/actions/README.md" in names and "tests/engine/test_packaging.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_license_is_the_apache_2_text(built):
    sdist, wheel = built
    with open(os.path.join(REPO, "LICENSE"), encoding="utf-8") as fh:
        text = fh.read()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "9. Accepting Warranty or Additional Liability" in text
    with tarfile.open(str(sdist)) as tar:
        pkg_info = tar.extractfile([n for n in tar.getnames() if n.endswith("/PKG-INFO")][0]).read().decode()
    assert "License: Apache-2.0" in pkg_info and "License-File: LICENSE" in pkg_info
    assert "Project-URL: " in pkg_info and "Keywords: " in pkg_info
    # issue 21: the floor is a maintained Python (3.9 reached its end of life in October 2025)
    assert "Classifier: Programming Language :: Python :: 3.10" in pkg_info
    assert "Classifier: Programming Language :: Python :: 3.9" not in pkg_info
    assert "Requires-Python: >=3.10" in pkg_info
    import zipfile

    with zipfile.ZipFile(str(wheel)) as whl:
        names = whl.namelist()
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
    assert "line_connector/_pack/connector.yaml" in names
    assert "line_connector/py.typed" not in names  # the package is not annotated; see setup.py


def test_installed_package_has_one_import_name_and_its_data(installed):
    venv, tmp = installed
    probe = ("import importlib.util, line_connector, line_connector.paths as p;"
             "print(line_connector.__file__); print(p.PACK_ROOT);"
             "print(importlib.util.find_spec('actions'))")
    out = _run([str(venv / "bin" / "python"), "-c", probe], cwd=str(tmp)).stdout.split("\n")
    assert out[0].startswith(str(venv)), "line_connector must come from the venv, not the checkout"
    assert out[1].endswith(os.path.join("line_connector", "_pack"))
    assert out[2] == "None", "no bare top-level 'actions' package may be installed"


def test_installed_cli_lists_checks_and_pushes_to_the_sandbox_outside_the_checkout(installed, tmp_path):
    venv, _ = installed
    exe = str(venv / "bin" / "line-connector")
    cwd = str(tmp_path)  # not the checkout: the data must come from the installed package
    env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    assert "line_send_push" in _run([exe, "list"], cwd=cwd, env=env).stdout
    assert "manifest OK" in _run([exe, "check"], cwd=cwd, env=env).stdout
    payload = json.dumps({"inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                     "messages": [{"type": "text", "text": "hi"}]}})
    proc = _run([exe, "run", "line_send_push", "--sandbox"], cwd=cwd, input=payload, env=env)
    assert json.loads(proc.stdout)[0]["status_code"] == 200
