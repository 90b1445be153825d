"""docs/actions/ is generated from the manifest and schemas; CI fails when
it is stale (regenerate with `line-connector docs`)."""
import os

from line_connector import docs
from line_connector.manifest import manifest
from line_connector.paths import PACK_ROOT


def test_docs_are_up_to_date():
    stale = docs.stale(os.path.join(PACK_ROOT, "docs"))
    assert stale == [], "run `line-connector docs`; stale: %s" % stale


def test_every_action_has_a_page_with_inputs_and_example():
    pages = docs.render()
    for spec in manifest().actions.values():
        page = pages["actions/%s.md" % spec.name]
        assert page.startswith("# %s\n" % spec.name)
        assert "## Inputs" in page and "## Output" in page
        if spec.example:
            assert "## Example" in page
        assert "[`%s`](%s.md)" % (spec.name, spec.name) in pages["actions/README.md"]


def test_stale_page_is_detected(tmp_path):
    docs.write(str(tmp_path))
    assert docs.stale(str(tmp_path)) == []
    (tmp_path / "actions" / "line_send_push.md").write_text("old", encoding="utf-8")
    (tmp_path / "actions" / "line_removed_action.md").write_text("gone", encoding="utf-8")
    assert docs.stale(str(tmp_path)) == ["actions/line_removed_action.md", "actions/line_send_push.md"]
