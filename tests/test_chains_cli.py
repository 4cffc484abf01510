"""`dialer chains`: list, validate, render (sample values and a lead's), show, stop; clear errors."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

from dialer.chains.catalog import PACKAGED_CATALOG
from kernel.db.models import Lead
from leads.intake import Intake, LeadIn
from tests.conftest import moscow

T0 = moscow(2026, 12, 7, 12, 0)


def test_render_validate_and_list(cli_db, run_dialer, tmp_path):
    shown = run_dialer("chains", "render", "offer-discount", "--language", "en")
    assert shown.returncode == 0, shown.stderr
    assert "Subject: A discount for new customers of ДомТехника" in shown.stdout
    assert "Quote the code DISCOUNT-1042" in shown.stdout and "offer-discount.v1.en#" in shown.stdout
    [lead] = Intake(cli_db).submit([LeadIn(phone="+79126660001", name="Ольга", product="Утюг", source="site")], T0)
    mine = run_dialer("chains", "render", "offer-gift", "--lead", str(lead.lead_id), "--format", "json")
    page = json.loads(mine.stdout)
    assert page["subject"] == "Ольга, подарок к вашему заказу в «ДомТехника»"
    assert "на «Утюг»" in page["body"] and f"GIFT-{lead.lead_id}" in page["body"]
    listed = run_dialer("chains", "list", "--format", "json")
    assert [c["chain"] for c in json.loads(listed.stdout)] == ["unreached v1", "write-instead v1"]
    assert run_dialer("chains", "validate").returncode == 0

    unknown = run_dialer("chains", "render", "offer-nope")
    assert unknown.returncode == 2 and "no template 'offer-nope'" in unknown.stderr
    broken = tmp_path / "broken"
    shutil.copytree(PACKAGED_CATALOG, broken)
    (broken / "templates" / "en" / "offer-bonus.yaml").unlink()
    refused = run_dialer("chains", "validate", env={"DIALER_CHAINS_DIRECTORY": str(broken)})
    assert refused.returncode == 2
    assert "template offer-bonus: no en text" in refused.stderr
    assert "chain unreached step 2: no template 'offer-bonus' in en" in refused.stderr


def test_show_and_stop_a_chain(cli_db, run_dialer):
    from kernel.db.models import TouchChain
    with cli_db.write() as session:
        lead = Lead(received_at=T0, source="site", phone_e164="+79126660002", status="closed",
                    close_reason="unreachable", closed_at=T0, attempts_count=5, contacts_count=0)
        session.add(lead)
        session.flush()
        session.add(TouchChain(lead_id=lead.id, phone_e164=lead.phone_e164, email="o@example.ru",
                               chain_id="unreached", chain_version=1, entry="exhausted", language="ru",
                               zones="Europe/Moscow", status="active", steps_sent=0, token="tok-cli",
                               next_send_at=T0 + timedelta(days=1), started_at=T0))
        lead_id = lead.id
    shown = run_dialer("chains", "show", str(lead_id), "--format", "json")
    assert json.loads(shown.stdout)["status"] == "active"
    bad = run_dialer("chains", "stop", str(lead_id), "--reason", "bored")
    assert bad.returncode == 2 and "unknown reason 'bored'" in bad.stderr
    stopped = run_dialer("chains", "stop", str(lead_id), "--reason", "reply")
    assert stopped.returncode == 0, stopped.stderr
    again = run_dialer("chains", "stop", str(lead_id), "--reason", "reply")
    assert again.returncode == 2 and "already stopped (reply)" in again.stderr
    none = run_dialer("chains", "show", "999")
    assert none.returncode == 1 and "lead 999 is in no e-mail chain" in none.stderr
