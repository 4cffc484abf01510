"""Issue 12: the customer's own clock from Russia's numbering plan (DESIGN §3 quiet hours).

Expected dialing windows are worked out by hand from the rule "no dialing 22:00-10:00 in the center
(Moscow, UTC+3) AND in the lead's own zone": Vladivostok UTC+10 -> 10:00-22:00 local is 03:00-15:00
Moscow, so 10:00-15:00 Moscow; Kaliningrad UTC+2 -> 11:00-23:00 Moscow, so 11:00-22:00; Novosibirsk
UTC+7 -> 06:00-18:00 Moscow, so 10:00-18:00; Moscow 10:00-22:00; Yakutia (UTC+9..+11, all kept) ->
the narrowest, UTC+11: 02:00-14:00 Moscow, so 10:00-14:00.
"""

from __future__ import annotations

import gzip
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from leads.numbering.plan import NumberingPlan, Range, load_file, national_number, use_file
from leads.numbering.regions import zones_of_region
from leads.numbering.registry_csv import RegistryFileRefused, read_registry
from leads.policy.why import evaluate
from leads.policy.zones import ZoneSource, lead_zones
from tests.policy_helpers import CENTER, lead, policy

VLADIVOSTOK_MOBILE = "+79147001234"   # 914 650..739 xxxx: Приморский край
KALININGRAD_MOBILE = "+79114501234"   # Калининградская область
NOVOSIBIRSK_MOBILE = "+79139001234"   # Новосибирская область
MOSCOW_MOBILE = "+79161234567"        # Город Москва, Московская область
YAKUTIA_MOBILE = "+79143001234"       # Республика Саха (Якутия): four zones
COUNTRY_WIDE = "+79541010001"         # allocated for the whole country: no region
UNALLOCATED = "+79071234567"          # 907: no range in the shipped snapshot
DAY = datetime(2026, 11, 24, 0, 0, tzinfo=CENTER)


def dialable_hours(phone: str, p=None, **fields) -> tuple[str, str] | None:
    """First and last dialable quarter-hour of a Moscow day for a new lead with this phone."""
    p = p or policy()
    facts = lead(1, DAY - timedelta(days=1), phone=phone, **fields)
    moments = [DAY + timedelta(minutes=15 * i) for i in range(96)]
    ok = [m for m in moments if evaluate(facts, m, p, CENTER).dialable]
    if not ok:
        return None
    assert ok == [m for m in moments if ok[0] <= m <= ok[-1]], "one unbroken window a day"
    return ok[0].strftime("%H:%M"), ok[-1].strftime("%H:%M")


@pytest.mark.parametrize("phone, zone, window", [
    (VLADIVOSTOK_MOBILE, "Asia/Vladivostok", ("10:00", "14:45")),
    (KALININGRAD_MOBILE, "Europe/Kaliningrad", ("11:00", "21:45")),
    (NOVOSIBIRSK_MOBILE, "Asia/Novosibirsk", ("10:00", "17:45")),
    (MOSCOW_MOBILE, "Europe/Moscow", ("10:00", "21:45")),
])
def test_given_a_mobile_when_dialed_then_only_inside_10_to_22_of_its_own_zone_and_the_centers(phone, zone, window):
    zones = lead_zones(None, phone, "center")
    assert (zones.names, zones.source) == ((zone,), ZoneSource.REGISTRY)
    assert dialable_hours(phone) == window


def test_given_vladivostok_mobile_at_2130_moscow_then_blocked_by_its_own_night():
    verdict = evaluate(lead(1, DAY, phone=VLADIVOSTOK_MOBILE), DAY.replace(hour=21, minute=30), policy(), CENTER)
    assert [b.rule.value for b in verdict.blocks] == ["quiet_hours_lead"]
    assert "Asia/Vladivostok" in verdict.blocks[0].message and "numbering plan" in verdict.blocks[0].message


def test_given_a_region_with_several_zones_then_all_are_kept_and_the_narrowest_window_applies():
    zones = lead_zones(None, YAKUTIA_MOBILE, "center")
    assert set(zones.names) == {"Asia/Yakutsk", "Asia/Khandyga", "Asia/Ust-Nera", "Asia/Srednekolymsk"}
    assert dialable_hours(YAKUTIA_MOBILE) == ("10:00", "13:45")


@pytest.mark.parametrize("phone", [UNALLOCATED, COUNTRY_WIDE])
def test_given_a_number_without_a_region_then_the_unknown_zone_policy_decides(phone):
    assert lead_zones(None, phone, "center").source == ZoneSource.CENTER
    assert dialable_hours(phone) == ("10:00", "21:45")                   # center only
    strict = lead_zones(None, phone, "strict")
    assert strict.source == ZoneSource.STRICT and "Asia/Kamchatka" in strict.names
    # every Russian zone: Kaliningrad (UTC+2) opens 11:00 Moscow, Kamchatka (UTC+12) closes 13:00 Moscow
    assert dialable_hours(phone, policy(unknown_zone_rule="strict")) == ("11:00", "12:45")


def test_given_a_zone_or_region_sent_with_the_lead_then_it_beats_the_numbering_plan():
    by_region = lead_zones(None, MOSCOW_MOBILE, "center", region="Приморский край")
    assert (by_region.names, by_region.source) == (("Asia/Vladivostok",), ZoneSource.LEAD_REGION)
    assert lead_zones(None, MOSCOW_MOBILE, "center", region="г. Новосибирск").names == ("Asia/Novosibirsk",)
    by_zone = lead_zones("Europe/Samara", MOSCOW_MOBILE, "center", region="Приморский край")
    assert (by_zone.names, by_zone.source) == (("Europe/Samara",), ZoneSource.LEAD)
    unknown_region = lead_zones(None, VLADIVOSTOK_MOBILE, "center", region="где-то")
    assert unknown_region.source == ZoneSource.REGISTRY                 # a region nobody knows: next source
    assert dialable_hours(MOSCOW_MOBILE, region="Приморский край") == ("10:00", "14:45")


def test_given_landline_outside_the_shipped_ranges_then_phonenumbers_names_its_zone():
    zones = lead_zones(None, "+74232123456", "center")
    assert (zones.names, zones.source) == (("Asia/Vladivostok",), ZoneSource.NUMBER)


@pytest.mark.parametrize("text, zones", [
    ("Приморский край", ("Asia/Vladivostok",)), ("приморский", ("Asia/Vladivostok",)),
    ("Калининградская обл.", ("Europe/Kaliningrad",)), ("Город Москва, Московская область", ("Europe/Moscow",)),
    ("г. Норильск|г.о. город Норильск|Красноярский край", ("Asia/Krasnoyarsk",)),
    ("Екатеринбург", ("Asia/Yekaterinburg",)), ("Российская Федерация", ()), ("", ()),
])
def test_given_region_names_as_leads_and_the_registry_write_them_then_their_zones(text, zones):
    assert zones_of_region(text) == zones


def test_given_kazakhstan_or_short_numbers_then_not_looked_up_in_russias_plan():
    assert national_number("+77011234567") is None and national_number("+7914") is None
    assert national_number(VLADIVOSTOK_MOBILE) == 9147001234


# ---- the table itself

def test_given_ranges_then_binary_search_finds_the_edges_and_nothing_in_gaps():
    plan = NumberingPlan.from_ranges([Range(9140000000, 9140099999, "Приморский край", "A"),
                                      Range(9140200000, 9140200000, "Калининградская область", "B"),
                                      Range(9140050000, 9140150000, "Омская область", "C")], {})
    assert plan.find(9140000000).region == "Приморский край" and plan.find(9140099999).operator == "A"
    assert plan.find(9140100000).region == "Омская область"             # the overlap's tail, clipped
    assert plan.find(9140150001) is None and plan.find(9139999999) is None
    assert plan.find(9140200000).zones == ("Europe/Kaliningrad",) and plan.find(9140200001) is None


OFFICIAL = ("АВС/ DEF;От;До;Емкость;Оператор;Регион;Территория ГАР;ИНН\n"
            "914;7000000;7099999;100000;ПАО \"МТС\";Приморский край;Приморский край;7740000076\n"
            "907;1000000;1999999;1000000;ООО \"Новый\";Калининградская обл.;Калининградская область;1\n"
            "это не диапазон;;;;;;;\n")


def test_given_an_official_csv_in_cp1251_then_read_and_bad_rows_reported(tmp_path):
    path = tmp_path / "DEF-9xx.csv"
    path.write_bytes(OFFICIAL.encode("cp1251"))
    report = read_registry(path)
    assert [(r.start, r.end, r.region) for r in report.ranges] == [
        (9147000000, 9147099999, "Приморский край"), (9071000000, 9071999999, "Калининградская область")]
    assert len(report.skipped) == 1 and "line 4" in report.skipped[0]


@pytest.mark.parametrize("content", [b"", b"name;phone\n1;2\n", b"\xff\xfe\x00garbage", OFFICIAL.splitlines()[0].encode()])
def test_given_a_file_that_is_no_registry_then_refused_with_a_reason(tmp_path, content):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(RegistryFileRefused):
        read_registry(path)


def dialer(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    import os
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update({"DIALER_DB_URL": f"sqlite:///{tmp_path / 'd.db'}", "DIALER_ZONES_REGISTRY_FILE":
                str(tmp_path / "plan.csv.gz"), "COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([str(Path(sys.executable).parent / "dialer"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)


def test_given_zones_update_then_lookup_uses_the_new_table_and_its_date(tmp_path):
    import json
    before = json.loads(dialer(tmp_path, "zones", "lookup", UNALLOCATED, "--format", "json").stdout)
    assert before["region"] is None and before["zone_source"].startswith("unknown")
    assert before["source_date"] == "2026-04-20"
    path = tmp_path / "DEF-9xx.csv"
    path.write_text(OFFICIAL, encoding="utf-8-sig")
    done = dialer(tmp_path, "zones", "update", str(path), "--date", "2026-12-01")
    assert done.returncode == 0, done.stderr
    assert "2 ranges" in done.stdout and "1 rows skipped" in done.stdout
    after = json.loads(dialer(tmp_path, "zones", "lookup", "8 907 123-45-67", "--format", "json").stdout)
    assert (after["region"], after["zones"], after["source_date"]) == \
        ("Калининградская область", ["Europe/Kaliningrad"], "2026-12-01")
    with gzip.open(tmp_path / "plan.csv.gz", "rt", encoding="utf-8") as f:
        assert len(NumberingPlan.read(f)) == 2
    refused = dialer(tmp_path, "zones", "update", str(tmp_path / "missing.csv"))
    assert refused.returncode == 2 and "cannot read" in refused.stderr
    bad = dialer(tmp_path, "zones", "lookup", "not a phone")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_given_a_newer_file_in_use_then_the_policy_reads_zones_from_it(tmp_path):
    plan = NumberingPlan.from_ranges([Range(9071000000, 9071999999, "Приморский край", "X")], {"date": "t"})
    plan.write(tmp_path / "p.csv.gz")
    try:
        use_file(tmp_path / "p.csv.gz")
        assert lead_zones(None, UNALLOCATED, "center").names == ("Asia/Vladivostok",)
        assert lead_zones(None, MOSCOW_MOBILE, "center").source == ZoneSource.NUMBER or \
            lead_zones(None, MOSCOW_MOBILE, "center").source == ZoneSource.CENTER
    finally:
        use_file(None)
    assert lead_zones(None, UNALLOCATED, "center").source == ZoneSource.CENTER
    assert len(load_file(tmp_path / "p.csv.gz")) == 1


# ---- garbage in: a clear refusal or an answer, never a traceback

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_property_any_bytes_as_a_registry_file_are_read_or_refused(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(b"\xd0\x90\xd0\x92\xd0\xa1/ DEF;\xd0\x9e\xd1\x82;\xd0\x94\xd0\xbe;E;"
                     + "Оператор;Регион\n".encode() + content)
    try:
        report = read_registry(path)
    except RegistryFileRefused as exc:
        assert str(exc)
        return
    assert all(r.start <= r.end and 9_999_999_999 >= r.end for r in report.ranges)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=20))
def test_property_any_region_text_or_phone_gives_zones_or_nothing(region, phone):
    zones = lead_zones(None, phone or None, "center", region=region)
    assert all(isinstance(z, str) for z in zones.names)
    assert national_number(phone) is None or 0 <= national_number(phone) < 10**10
