"""NXCloud end to end: the CLI against the sandbox, which checks the
signature over the raw body, the timestamp and the per-type fields."""
import json

import pytest

from line_connector import ActionError, run_action
from line_connector.actions.nxcloud.signing import NxSigner
from line_connector.sandbox import FaultPlan, Sandbox
from test_nxcloud_actions import LINE_TYPES, SUPER_TYPES, VIBER_TYPES

CASES = [("nxcloud_send_line", v) for v in LINE_TYPES.values()] + \
        [("nxcloud_send_viber", v) for v in VIBER_TYPES.values()] + \
        [("nxcloud_send_super_message", {"appkey": "k", "phones": ["85290000630", "85290000631"], "message": m,
                                         "priority": ["VIBER", "SMS"]}) for m in SUPER_TYPES.values()]


@pytest.mark.parametrize("action,inputs", CASES)
def test_every_type_verifies_in_the_sandbox(cli, line_sandbox, action, inputs):
    asset = line_sandbox.demo_assets()["nxcloud"]
    code, out, err = cli("run", action, stdin={"asset": asset, "inputs": inputs})
    assert code == 0, out + err
    assert all(r["json_body"]["code"] == 0 for r in json.loads(out))
    assert line_sandbox.nxcloud.rejected == {}


def test_non_ascii_body_verifies_and_arrives_intact(line_sandbox):
    inputs = dict(LINE_TYPES["text"], content="แจ้งเตือน: ดิสก์เต็ม 磁盘已满 ⚠️")
    run_action("nxcloud_send_line", {}, inputs, sandbox=line_sandbox)
    assert line_sandbox.nxcloud.per_recipient[("line", inputs["to"])] == 1


def test_wrong_secret_is_1003_exit_1(cli, line_sandbox):
    asset = dict(line_sandbox.demo_assets()["nxcloud"], access_secret="not-the-secret")
    code, out, err = cli("run", "nxcloud_send_viber", stdin={"asset": asset, "inputs": VIBER_TYPES["text"]})
    assert code == 1
    (result,) = json.loads(out)
    assert result["json_body"]["code"] == 1003 and "signature" in result["note"]
    assert "not-the-secret" not in out + err


def test_clock_drift_over_60_seconds_is_refused(monkeypatch, line_sandbox):
    import time
    monkeypatch.setattr(NxSigner, "clock", staticmethod(lambda: time.time() - 61))
    with pytest.raises(ActionError) as exc:
        run_action("nxcloud_send_line", {}, LINE_TYPES["text"], sandbox=line_sandbox)
    assert exc.value.output[0]["json_body"]["code"] == 1002
    monkeypatch.setattr(NxSigner, "clock", staticmethod(lambda: time.time() - 50))
    assert run_action("nxcloud_send_line", {}, LINE_TYPES["text"], sandbox=line_sandbox)[0]["ok"]


def test_4500_phones_make_three_requests(line_sandbox):
    phones = [str(85290000000 + i) for i in range(4500)]
    out = run_action("nxcloud_send_super_message", {}, {"appkey": "k", "phones": phones,
                                                       "message": SUPER_TYPES["text"]}, sandbox=line_sandbox)
    assert [len(r["recipients"]) for r in out] == [2000, 2000, 500]
    assert all(line_sandbox.nxcloud.per_recipient[("super", p)] == 1 for p in phones)


@pytest.mark.parametrize("fault", ["500", "slow", "reset_after"])
def test_a_send_that_may_have_arrived_is_never_resent(fault):
    with Sandbox(faults=FaultPlan(script=[fault], slow_seconds=1.5)) as sb:
        with pytest.raises(ActionError) as exc:
            run_action("nxcloud_send_line", {}, LINE_TYPES["text"], sandbox=sb, timeout=(2.0, 0.5))
        (result,) = exc.value.output
        assert result["attempts"] == 1
        delivered = sb.nxcloud.per_recipient[("line", LINE_TYPES["text"]["to"])]
        assert delivered == (0 if fault == "500" else 1)
        if fault != "500":
            assert result["delivery"] == "unknown" and "outcome unknown" in result["note"]
