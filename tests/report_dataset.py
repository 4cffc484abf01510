"""A small call-center day and a half, built row by row, for the report tests (tests/test_reports.py).

Center zone Europe/Moscow. Period: 2026-11-23 and 2026-11-24 (Monday, Tuesday). Every number the tests
expect is worked out by hand in tests/test_reports.py from the comments here.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from dialer.dispositions import record_disposition
from dialer.reports.groups import set_group
from kernel.db.models import CallAttempt, Lead, Operator, ScriptGap
from leads.disposition import DispositionInput, DispositionRefused, parse_topics
from tests.conftest import moscow

ZONE = "Europe/Moscow"
TOPICS = parse_topics("доставка, цена, другое")
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def build(db) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.write() as session:
        anna = Operator(name="Анна", interface="PJSIP/op1", skills=[], created_at=moscow(2026, 11, 1, 9, 0))
        boris = Operator(name="Борис", interface="PJSIP/op2", skills=[], created_at=moscow(2026, 11, 1, 9, 0))
        session.add_all([anna, boris])
        session.flush()
        ids["anna"], ids["boris"] = anna.id, boris.id

        def lead(name, at, status="new", first_dial=None, **kw):
            row = Lead(received_at=at, source=kw.pop("source", "site"), name=name, status=status,
                       product=kw.pop("product", "Пылесос"), first_dialed_at=first_dial, phone_e164=kw.pop(
                           "phone", f"+7999{len(ids):07d}"), **kw)
            session.add(row)
            session.flush()
            ids[name] = row.id
            return row

        def call(lead_row, no, at, result, operator=None, answered=None, connected=None, ended=None,
                 wrapup_until=None):
            row = CallAttempt(lead_id=lead_row.id, attempt_no=no, daemon_id="test", state="ended", result=result,
                              operator_id=operator, claimed_at=at, originated_at=at, answered_at=answered,
                              connected_at=connected, ended_at=ended or (at + 30 * S), wrapup_until=wrapup_until)
            session.add(row)
            # what the results writer keeps on the lead (leads/policy/results.py): the first conversation
            if result == "connected" or connected is not None:
                first = lead_row.first_contact_attempt_no
                lead_row.first_contact_attempt_no = no if first is None else min(first, no)
            session.flush()
            ids[f"{lead_row.name}#{no}"] = row.id
            return row

        # L1 23rd 10:00, dialed 10:05 (5 min): #1 no answer, #2 Анна talks 5 min + 1 min wrap-up; confirmed 12500
        l1 = lead("L1", moscow(2026, 11, 23, 10, 0), "retry", moscow(2026, 11, 23, 10, 5))
        call(l1, 1, moscow(2026, 11, 23, 10, 5), "no_answer")
        t = moscow(2026, 11, 23, 10, 30)
        call(l1, 2, t, "connected", anna.id, t + 10 * S, t + 20 * S, t + 20 * S + 5 * M, t + 20 * S + 6 * M)
        # L2 23rd 23:50, first dialed across midnight at 00:20 on the 24th (30 min); Анна, now in team Б, talks
        # 5 min; confirmed with amount 0 after the same amount written as -1 was refused
        l2 = lead("L2", moscow(2026, 11, 23, 23, 50), "retry", moscow(2026, 11, 24, 0, 20))
        t = moscow(2026, 11, 24, 0, 20)
        call(l2, 1, t, "connected", anna.id, t + 10 * S, t + 30 * S, t + 30 * S + 5 * M)
        # L3 duplicate of L1, L4 duplicate of L3 (a duplicate of a duplicate); never dialed
        l3 = lead("L3", moscow(2026, 11, 23, 11, 0), "duplicate", duplicate_of_id=l1.id)
        lead("L4", moscow(2026, 11, 23, 11, 5), "duplicate", duplicate_of_id=l3.id)
        # L5 invalid at intake (no phone)
        lead("L5", moscow(2026, 11, 23, 12, 0), "invalid", invalid_reason="no_phone", phone=None)
        # L6 dialed after 2 min, Борис talks 2 min + 30 s wrap-up, the customer ordered nothing: fake
        l6 = lead("L6", moscow(2026, 11, 23, 13, 0), "retry", moscow(2026, 11, 23, 13, 2), source="promo")
        t = moscow(2026, 11, 23, 13, 2)
        call(l6, 1, t, "connected", boris.id, t + 10 * S, t + 30 * S, t + 30 * S + 2 * M, t + 30 * S + 150 * S)
        # L10 23rd 14:00, dialed after 10 min, Борис talks 3 min: confirmed 3000
        l10 = lead("L10", moscow(2026, 11, 23, 14, 0), "retry", moscow(2026, 11, 23, 14, 10), product="Роутер")
        t = moscow(2026, 11, 23, 14, 10)
        call(l10, 1, t, "connected", boris.id, t + 5 * S, t + 15 * S, t + 15 * S + 3 * M)
        # L7 24th 09:00, dialed after 40 min, SLA alert: #1 answered then abandoned, #2 busy, #3 Борис 10 min:
        # not interested
        l7 = lead("L7", moscow(2026, 11, 24, 9, 0), "retry", moscow(2026, 11, 24, 9, 40),
                  sla_alerted_at=moscow(2026, 11, 24, 9, 15))
        t = moscow(2026, 11, 24, 9, 40)
        call(l7, 1, t, "abandoned", None, t + 10 * S, None, t + 40 * S)
        call(l7, 2, moscow(2026, 11, 24, 10, 0), "busy")
        t = moscow(2026, 11, 24, 10, 30)
        call(l7, 3, t, "connected", boris.id, t + 10 * S, t + 20 * S, t + 20 * S + 10 * M)
        # L8 24th 10:00, not dialed yet
        lead("L8", moscow(2026, 11, 24, 10, 0))
        # L9 arrived on the 22nd (outside the period); its call on the 23rd 10:10 is inside
        l9 = lead("L9", moscow(2026, 11, 22, 15, 0), "retry", moscow(2026, 11, 22, 15, 1))
        call(l9, 1, moscow(2026, 11, 23, 10, 10), "no_answer")
        # L11 arrived on the 25th: outside the period
        lead("L11", moscow(2026, 11, 25, 10, 0))
        session.add(ScriptGap(script_id="vacuum", script_version=1, question="Есть ли гарантия на мотор?",
                              lead_id=l7.id, attempt_id=ids["L7#3"], operator_id=boris.id,
                              created_at=moscow(2026, 11, 24, 10, 41)))

    # Teams: Анна in А from Nov 1, in Б from the 24th 00:00; Борис in А all along
    set_group(db, ids["anna"], "Команда А", now=moscow(2026, 11, 1, 9, 0))
    set_group(db, ids["boris"], "Команда А", now=moscow(2026, 11, 1, 9, 0))
    set_group(db, "PJSIP/op1", "Команда Б", now=moscow(2026, 11, 30, 9, 0), valid_from=moscow(2026, 11, 24, 0, 0))

    def dispose(attempt, kind, at, **kw):
        return record_disposition(db, ids[attempt], DispositionInput(kind, **kw), now=at, center_zone=ZONE,
                                  recorded_by="test", topics=TOPICS)

    dispose("L1#2", "confirmed", moscow(2026, 11, 23, 10, 36), amount="12500", comment="доставка завтра",
            topic="доставка", script_id="ru-order-first-contact", script_version="2")
    try:
        dispose("L2#1", "confirmed", moscow(2026, 11, 24, 0, 26), amount="-1")
        raise AssertionError("a negative amount must be refused")
    except DispositionRefused:
        pass
    dispose("L2#1", "confirmed", moscow(2026, 11, 24, 0, 26), amount="0", comment="подарок")
    dispose("L6#1", "fake", moscow(2026, 11, 23, 13, 5), comment="ничего не заказывал")
    dispose("L10#1", "confirmed", moscow(2026, 11, 23, 14, 14), amount="3000,00", topic="Цена")
    dispose("L7#3", "not_interested", moscow(2026, 11, 24, 10, 41), comment="дорого", topic="цена")
    return ids


AMOUNTS = {"L1": Decimal("12500"), "L2": Decimal("0"), "L10": Decimal("3000")}
