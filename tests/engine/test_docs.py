"""docs/actions/ is generated from the manifest and schemas; CI fails when
it is stale (regenerate with `line-connector docs`), and every page's
sandbox example runs as pasted."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from line_connector import cli, docs
from line_connector.manifest import manifest
from line_connector.paths import PACK_ROOT

DOCS_DIR = os.path.join(PACK_ROOT, "docs", "actions")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
ACTIONS = list(manifest().actions)


def _page(name):
    with open(os.path.join(DOCS_DIR, name + ".md"), encoding="utf-8") as fh:
        return fh.read()


def _sandbox_example(name):
    """The page's one sh block that runs the action in the sandbox."""
    blocks = [b for b in SH_BLOCK.findall(_page(name)) if "--sandbox" in b]
    assert len(blocks) == 1, "%s.md: expected one sandbox example, found %d" % (name, len(blocks))
    return blocks[0]


def test_docs_are_up_to_date():
    stale = docs.stale(DOCS_DIR)
    assert stale == [], "run `line-connector docs`; stale: %s" % stale


def test_every_action_has_a_page_with_inputs_output_and_examples():
    pages = docs.render()
    for spec in manifest().actions.values():
        page = pages["%s.md" % spec.name]
        assert page.startswith("# %s\n" % spec.name)
        assert "## Inputs" in page and "## Output" in page and "## Example" in page
        assert "[`%s`](%s.md)" % (spec.name, spec.name) in pages["README.md"]
        # the Output section says something before its table
        output = page.split("## Output\n\n", 1)[1]
        assert output.split("\n", 1)[0].strip(), "%s: empty Output description" % spec.name
        # the real-asset variant names every required field with a placeholder, no "..." asset
        real = [b for b in SH_BLOCK.findall(page) if "--sandbox" not in b]
        assert len(real) == 1 and '"asset": {\n' in real[0] and '"<' in real[0], spec.name
        assert '"...": "..."' not in page


def test_pages_speak_of_the_pack_and_link_their_types():
    for name, page in docs.render().items():
        assert "seed" not in page.lower(), name
        # a type cell naming a definition links to it ("array of message" alone dangles)
        for cell in re.findall(r"\| array of ([^|]+) \|", page):
            assert cell.split()[0] in ("string", "integer", "number", "boolean", "object", "one") \
                or cell.startswith("["), (name, cell)
        for link in re.findall(r"\]\(\.\./\.\./(schemas/[^)#]+)\)", page):
            assert os.path.isfile(os.path.join(PACK_ROOT, link)), (name, link)
        for link in re.findall(r"\]\(([a-z_]+\.md)\)", page):
            assert os.path.isfile(os.path.join(DOCS_DIR, link)), (name, link)


#: placeholders that only a value of their own form replaces: a channel ID is
#: digits, a private key a JWK (the line_channel_jwt asset signs with it even
#: in a dry run, so a bad key is refused before anything is sent)
VALUES = {"channel_id": "1650000000"}


def _values():
    from line_connector.sandbox.line_tokens import demo_private_jwk

    return dict(VALUES, private_key=demo_private_jwk())


def test_real_asset_variant_is_valid_but_for_its_placeholders():
    """Replacing the placeholders with values makes the documented request
    one the pack accepts (dry run: nothing sent). A local action (the webhook
    parser) still runs; its refusal of a made-up secret is not an input error."""
    from line_connector.errors import ActionError
    from line_connector.runner import run_action

    for name in ACTIONS:
        page = _page(name)
        block = [b for b in SH_BLOCK.findall(page) if "--sandbox" not in b][0]
        doc = json.loads(block.split("<<'EOF'\n", 1)[1].rsplit("EOF", 1)[0])
        asset = {k: _values().get(k, "x-%s" % k) for k in doc["asset"]}
        try:
            run_action(name, asset, doc["inputs"], dry_run=True)  # InputError fails the test
        except ActionError:
            assert name == "line_parse_webhook"


@pytest.mark.parametrize("name", ACTIONS)
def test_sandbox_example_runs_as_pasted(name, tmp_path):
    """The example exactly as a reader pastes it into bash, with the
    `line-connector` entry point found on PATH, from an unrelated directory."""
    exe = shutil.which("line-connector") or os.path.join(os.path.dirname(sys.executable), "line-connector")
    assert os.path.exists(exe), "the line-connector entry point is not installed"
    env = dict(os.environ, PATH=os.path.dirname(exe) + os.pathsep + os.environ.get("PATH", ""),
               LINE_CONNECTOR_CACHE_DIR=str(tmp_path / "cache"))
    command = _sandbox_example(name)
    assert command.startswith("echo '{\"inputs\": ") and ("| line-connector run %s --sandbox" % name) in command
    proc = subprocess.run(["bash", "-c", command], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "%s.md example failed (exit %d):\n%s\n%s" % (
        name, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    json.loads(proc.stdout)


def test_out_dir_is_where_the_pages_land(tmp_path):
    target = tmp_path / "reference"
    assert cli.main(["docs", "--out", str(target)]) == 0
    assert (target / "README.md").is_file() and (target / "line_send_push.md").is_file()
    assert not (target / "actions").exists()
    assert cli.main(["docs", "--out", str(target), "--check"]) == 0


def test_stale_page_is_detected_and_only_generated_pages_are_removed(tmp_path):
    docs.write(str(tmp_path))
    assert docs.stale(str(tmp_path)) == []
    (tmp_path / "line_send_push.md").write_text("old", encoding="utf-8")
    (tmp_path / "line_removed_action.md").write_text("gone", encoding="utf-8")
    (tmp_path / "NOTES.md").write_text("mine", encoding="utf-8")
    assert docs.stale(str(tmp_path)) == ["line_removed_action.md", "line_send_push.md"]
    assert cli.main(["docs", "--out", str(tmp_path), "--check"]) == 1
    docs.write(str(tmp_path))
    assert docs.stale(str(tmp_path)) == []
    assert not (tmp_path / "line_removed_action.md").exists()
    assert (tmp_path / "NOTES.md").read_text(encoding="utf-8") == "mine"


def test_readme_links_the_reference():
    with open(os.path.join(PACK_ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    assert "(docs/actions/README.md)" in readme
    assert os.path.isfile(os.path.join(DOCS_DIR, "README.md"))
