"""The team-lead page's report view in a real headless Chromium against the real daemon (issue 13)."""

from __future__ import annotations

import pytest

from tests import report_dataset
from tests.console_harness import TEAMLEAD_PASSWORD, DaemonThread, launch_chromium

pytestmark = pytest.mark.timeout(240)


def test_team_lead_reads_the_report_of_a_chosen_day(sqlite_db):
    report_dataset.build(sqlite_db)
    with DaemonThread(sqlite_db) as daemon, launch_chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{daemon.url}/console/teamlead/report")
        assert "/console/login" in page.url
        page.fill("#login", "teamlead")
        page.fill("#password", TEAMLEAD_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#queue")
        page.goto(f"{daemon.url}/console/teamlead/report")
        page.wait_for_selector("#report-kpis")
        assert "Заявок получено" in page.inner_text("#report-kpis")
        # the abandon budget as of the daemon's now: its words follow its figures (any share over 3%: over)
        import re
        budget = page.inner_text("#abandon-budget")
        found = re.fullmatch(r"Брошенные звонки: сегодня (—|[\d.]+%), за 30 дн\. (—|[\d.]+%) при пределе 3% "
                             r"от отвеченных — (в норме|близко к пределу|превышен)", budget)
        assert found, budget
        shares = [float(x[:-1]) for x in found.groups()[:2] if x != "—"]
        expected = "превышен" if any(x > 3 for x in shares) else "близко к пределу" if any(
            x >= 2.4 for x in shares) else "в норме"
        assert found.group(3) == expected
        # choose the 23rd in the form, as a team lead does
        page.fill("input[name=from]", "2026-11-23")
        page.fill("input[name=to]", "2026-11-23")
        page.click("#report-period button[type=submit]")
        page.wait_for_selector("#report-span:has-text('2026-11-23 00:00')")

        def kpi(name: str) -> str:
            return page.inner_text(f"#report-kpis tr[data-kpi={name}] td")
        # the 23rd, worked out by hand in tests/test_reports.py::test_by_day_lead_by_arrival_call_by_start
        assert (kpi("leads"), kpi("actual"), kpi("contact_rate_pct")) == ("7", "3", "100.0")
        assert (kpi("confirmed"), kpi("order_sum"), kpi("average_check")) == ("3", "15500.00", "5166.67")
        assert (kpi("calls"), kpi("talk_min")) == ("5", "10.0")
        assert "Анна" in page.inner_text("#report-operators")
        assert page.locator("#report-charts svg").count() == 1
        assert "15 min target" in page.inner_html("#report-charts")
        page.goto(f"{daemon.url}/console/teamlead/report?from=вчера")
        assert "Неверный период" in page.inner_text("body")
