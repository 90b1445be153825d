"""A plain (non-editable) install into a fresh virtual environment gives a
working CLI that finds the manifest, schemas and assets, under the single
import name ``line_connector``.

Built and installed offline: the wheel is built with this environment's
setuptools (--no-build-isolation) and the fresh venv borrows this
environment's installed dependencies through a .pth file, so the test never
reaches a package index.
"""
import json
import os
import site
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(cmd, cwd, **kw):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(wheels), REPO], cwd=str(tmp))
    (wheel,) = list(wheels.glob("line_connector-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=str(tmp))
    vpy = venv / "bin" / "python"
    purelib = _run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=str(tmp)).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    with open(os.path.join(purelib, "borrowed_deps.pth"), "w") as fh:
        fh.write("\n".join(sorted(deps)) + "\n")
    _run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=str(tmp))
    return venv, tmp


def test_wheel_has_one_import_name_and_its_data(installed):
    venv, tmp = installed
    probe = ("import importlib.util, line_connector, line_connector.paths as p;"
             "print(line_connector.__file__); print(p.PACK_ROOT);"
             "print(importlib.util.find_spec('actions'))")
    out = _run([str(venv / "bin" / "python"), "-c", probe], cwd=str(tmp)).stdout.split("\n")
    assert out[0].startswith(str(venv)), "line_connector must come from the venv, not the checkout"
    assert out[1].endswith(os.path.join("line_connector", "_pack"))
    assert out[2] == "None", "no bare top-level 'actions' package may be installed"


def test_installed_cli_lists_checks_and_runs_against_the_sandbox(installed):
    venv, tmp = installed
    exe = str(venv / "bin" / "line-connector")
    assert "line_send_push" in _run([exe, "list"], cwd=str(tmp)).stdout
    assert "manifest OK" in _run([exe, "check"], cwd=str(tmp)).stdout
    payload = json.dumps({"inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                     "messages": [{"type": "text", "text": "hi"}]}})
    out = _run([exe, "run", "line_send_push", "--sandbox"], cwd=str(tmp), input=payload).stdout
    assert json.loads(out)[0]["status_code"] == 200
