"""The call scripts catalog: validation with line numbers, selection per lead, rendering, gap flags, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from kernel.db.models import CallAttempt, Lead, Operator, ScriptGap
from kernel.errors import NotFound, UsageError
from scripts_catalog import (PACKAGED_CATALOG, Catalog, CatalogInvalid, LeadFacts, NoScript, Problem,
                             ScriptStatus, UnknownScript, flag_gap, gap_report, load_catalog, load_lead_facts,
                             normalize_question, render, select_for_lead, select_script, validate_directory)
from scripts_catalog.validate import script_from_text

DIALER = Path(sys.executable).parent / "dialer"
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)

MINIMAL = """\
id: {id}
version: {version}
status: {status}
language: {language}
title: "Script {id}"
contact: {contact}
products: {products}
default: {default}
priority: {priority}
goal: "Goal of {id}"
stages:
  greeting:
    - "Hello {{name}}"
"""


def script_text(id="s", version=1, status="active", language="ru", contact="1", products="[]",
                default="false", priority=0) -> str:
    return MINIMAL.format(id=id, version=version, status=status, language=language, contact=contact,
                          products=products, default=default, priority=priority)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def catalog_of(*texts: str) -> Catalog:
    scripts = []
    for number, text in enumerate(texts):
        script, problems = script_from_text(text, f"s{number}.yaml")
        assert not problems, problems
        scripts.append(script)
    return Catalog(tuple(scripts))


def problems_in(folder: Path) -> list[Problem]:
    return list(validate_directory(folder).problems)


def only_problem(folder: Path) -> Problem:
    problems = problems_in(folder)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# ---------------------------------------------------------------- validation, each error with its line

def test_given_the_shipped_catalog_when_validated_then_it_has_no_problem_and_both_languages():
    report = validate_directory(PACKAGED_CATALOG)
    assert report.ok, [str(p) for p in report.problems]
    assert {s.language for s in report.catalog.scripts} == {"ru", "en"}
    ru = [s for s in report.catalog.newest_active() if s.language == "ru"]
    assert {str(r) for s in ru for r in s.contacts} >= {"1", "2", "3+"}


def test_given_an_unknown_stage_when_validated_then_the_error_points_at_its_key_line(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true") + "  small_talk:\n    - \"How is the weather?\"\n")
    problem = only_problem(tmp_path)
    assert problem.line == 14
    assert "unknown stage 'small_talk'" in problem.message
    assert problem.path.endswith("a.yaml")


def test_given_a_placeholder_without_source_when_validated_then_the_error_points_at_the_text_line(tmp_path):
    text = script_text(default="true").replace('    - "Hello {name}"\n', '    - "Hello {name}"\n'
                                               '    - "Your courier is {courier_name}"\n')
    write(tmp_path, "a.yaml", text)
    problem = only_problem(tmp_path)
    assert problem.line == 14
    assert "{courier_name} has no source" in problem.message


def test_given_a_placeholder_in_a_literal_block_when_validated_then_the_line_is_the_exact_line(tmp_path):
    text = script_text(default="true") + textwrap.indent(textwrap.dedent("""\
        closing:
          - |
            Thank you, {name}.
            We deliver on {delivery_day}.
        """), "  ")
    write(tmp_path, "a.yaml", text)
    problem = only_problem(tmp_path)
    assert problem.line == 17
    assert "{delivery_day}" in problem.message


def test_given_a_declared_placeholder_with_an_unknown_source_when_validated_then_its_source_line_is_named(tmp_path):
    text = script_text(default="true") + "placeholders:\n  courier:\n    source: lead.courier\n"
    write(tmp_path, "a.yaml", text)
    problem = only_problem(tmp_path)
    assert problem.line == 16
    assert "unknown source 'lead.courier'" in problem.message


def test_given_a_declared_placeholder_with_neither_source_nor_value_then_it_is_reported(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true") + "placeholders:\n  courier:\n    fallback: x\n")
    problem = only_problem(tmp_path)
    assert problem.line == 15
    assert "placeholder 'courier' has no source" in problem.message


def test_given_the_same_id_and_version_in_two_files_when_validated_then_the_second_names_the_first(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true"))
    write(tmp_path, "b.yaml", "# a copy\n" + script_text())
    problem = only_problem(tmp_path)
    assert problem.path.endswith("b.yaml") and problem.line == 2
    assert "duplicate script 's' version 1" in problem.message
    assert "a.yaml:1" in problem.message


def test_given_two_versions_of_one_script_then_they_are_not_duplicates(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true"))
    write(tmp_path, "b.yaml", script_text(version=2, default="true"))
    assert problems_in(tmp_path) == []


@pytest.mark.parametrize("text, line, words", [
    ('id: s\nversion: 1\ntitle: "unclosed\n', 3, "broken YAML"),
    ("id: s\nversion: 1\nstages:\n  greeting:\n    - a\n  - b\n", 6, "while parsing a block mapping (line 4)"),
    ("id: s\nversion: [1\nlanguage: ru\n", 3, "broken YAML"),
], ids=["unclosed-quote", "bad-indent", "unclosed-list"])
def test_given_broken_yaml_when_validated_then_the_line_of_the_break_is_named(tmp_path, text, line, words):
    write(tmp_path, "a.yaml", text)
    problem = only_problem(tmp_path)
    assert (problem.line, words in problem.message) == (line, True), str(problem)


def test_given_a_key_written_twice_when_validated_then_the_second_is_reported(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true") + "goal: again\n")
    problem = only_problem(tmp_path)
    assert problem.line == 14 and "duplicate key 'goal' (first on line 10)" in problem.message


@pytest.mark.parametrize("old, new, line, words", [
    ("contact: 1", "contact: first", 6, "contact 'first'"),
    ("version: 1", "version: 0", 2, "version must be a whole number from 1"),
    ("status: active", "status: live", 3, "status 'live'"),
    ('    - "Hello {name}"', '    - "Hello {Customer Name}"', 13, "'{Customer Name}' is not a placeholder"),
    ('    - "Hello {name}"', '    - "Price: {amount"', 13, "a lone '{'"),
    ('    - "Hello {name}"', '    - ""', 13, "is empty"),
    ("priority: 0", "priorty: 0", 9, "unknown key 'priorty'"),
], ids=["contact", "version", "status", "placeholder-name", "lone-brace", "empty-variant", "typo-key"])
def test_given_a_bad_field_when_validated_then_its_line_is_named(tmp_path, old, new, line, words):
    text = script_text(default="true")
    assert old in text
    write(tmp_path, "a.yaml", text.replace(old, new))
    problem = only_problem(tmp_path)
    assert problem.line == line and words in problem.message, str(problem)


def test_given_a_missing_required_field_then_the_problem_says_which(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true").replace('goal: "Goal of s"\n', ""))
    problem = only_problem(tmp_path)
    assert problem.line == 1 and "missing 'goal'" in problem.message


def test_given_a_file_that_is_not_utf8_then_the_line_of_the_bad_byte_is_named(tmp_path):
    (tmp_path / "a.yaml").write_bytes(script_text(default="true").replace("Goal of s", "Цель").encode("cp1251"))
    problem = only_problem(tmp_path)
    assert problem.line == 10 and "not UTF-8" in problem.message


def test_given_two_active_defaults_in_one_language_then_the_catalog_is_refused(tmp_path):
    write(tmp_path, "a.yaml", script_text(id="a", default="true"))
    write(tmp_path, "b.yaml", script_text(id="b", default="true"))
    problem = only_problem(tmp_path)
    assert "more than one active default script for language 'ru'" in problem.message


def test_given_a_language_without_default_then_the_catalog_says_so(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true"))
    write(tmp_path, "b.yaml", script_text(id="e", language="en"))
    problem = only_problem(tmp_path)
    assert problem.line == 0 and "no active default script (default: true) for language 'en'" in problem.message


def test_given_a_broken_catalog_when_loaded_then_catalog_invalid_lists_every_problem(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true").replace("contact: 1", "contact: 0"))
    write(tmp_path, "b.yaml", "id: [\n")
    with pytest.raises(CatalogInvalid) as caught:
        load_catalog(tmp_path)
    assert len(caught.value.problems) == 2
    assert "a.yaml:6:" in str(caught.value) and "b.yaml:" in str(caught.value)


# ---------------------------------------------------------------- selection

@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog(PACKAGED_CATALOG)


@pytest.mark.parametrize("contact, product, expected", [
    (1, "Смартфон Samsung Galaxy A55", "ru-smartphones-first-contact"),
    (1, "  ТЕЛЕФОН   Xiaomi ", "ru-smartphones-first-contact"),
    (1, "Пылесос Dyson V15", "ru-order-first-contact"),
    (1, None, "ru-order-first-contact"),
    (2, "Смартфон Samsung Galaxy A55", "ru-order-second-contact"),
    (3, "Пылесос", "ru-order-third-contact"),
    (7, None, "ru-order-third-contact"),
])
def test_given_contact_and_product_when_selecting_then_the_right_russian_script(shipped, contact, product,
                                                                                expected):
    choice = select_script(shipped, contact=contact, product=product, languages=["ru"])
    assert choice.script.id == expected
    assert choice.script.status is ScriptStatus.ACTIVE


def test_given_a_retired_version_when_selecting_then_the_newest_active_version_is_used(shipped):
    choice = select_script(shipped, contact=1, product="Пылесос", languages=["ru"])
    assert (choice.script.id, choice.script.version) == ("ru-order-first-contact", 2)
    assert shipped.get("ru-order-first-contact", 1).status is ScriptStatus.RETIRED


def test_given_a_lead_asking_for_english_then_the_english_script_else_the_center_language(shipped):
    english = LeadFacts(lead_id=1, product="Kettle", extra={"language": "EN"}, contacts_count=1)
    assert select_for_lead(shipped, english, "ru").script.id == "en-order-second-contact"
    german = LeadFacts(lead_id=2, product="Kettle", extra={"language": "de"})
    assert select_for_lead(shipped, german, "ru").script.id == "ru-order-first-contact"


def test_given_newer_draft_and_older_active_versions_then_the_newest_active_wins():
    catalog = catalog_of(script_text(id="x", version=1), script_text(id="x", version=2),
                         script_text(id="x", version=3, status="draft"), script_text(id="d", default="true"))
    assert select_script(catalog, contact=1, product=None, languages=["ru"]).script.version == 2


def test_given_no_script_for_the_contact_or_product_then_the_default_script(shipped):
    catalog = catalog_of(script_text(id="phones", contact="1", products='["смартфон*"]'),
                         script_text(id="fallback", contact="1+", default="true"))
    choice = select_script(catalog, contact=2, product="Смартфон", languages=["ru"])
    assert choice.script.id == "fallback" and "default" in choice.reason
    assert select_script(catalog, contact=1, product="Холодильник", languages=["ru"]).script.id == "fallback"
    assert select_script(catalog, contact=1, product="смартфон X", languages=["ru"]).script.id == "phones"


def test_given_a_product_script_and_a_generic_one_then_the_product_match_wins_and_priority_breaks_ties():
    catalog = catalog_of(script_text(id="a-generic"), script_text(id="b-phones", products='["смартфон*"]'),
                         script_text(id="c-phones", products='["смартфон*"]', priority=5),
                         script_text(id="z", default="true"))
    assert select_script(catalog, contact=1, product="Смартфон", languages=["ru"]).script.id == "c-phones"
    assert select_script(catalog, contact=1, product="Утюг", languages=["ru"]).script.id == "a-generic"


def test_given_no_default_and_nothing_fits_then_no_script_is_raised():
    catalog = catalog_of(script_text(id="first", contact="1"))
    with pytest.raises(NoScript, match="contact 2"):
        select_script(catalog, contact=2, product=None, languages=["ru"])


def test_given_an_unknown_script_or_version_then_unknown_script_names_what_exists(shipped):
    with pytest.raises(UnknownScript, match="versions: 1, 2"):
        shipped.get("ru-order-first-contact", 9)
    with pytest.raises(UnknownScript, match="no script 'nope'"):
        shipped.get("nope")


# ---------------------------------------------------------------- rendering

def full_lead(**changes) -> LeadFacts:
    values = dict(lead_id=42, name="Анна Петрова", product="Пылесос Dyson V15", order_number="А-1001",
                  extra={"amount": 12990.0, "delivery_date": "завтра, 25 ноября"}, operator_name="Ольга")
    values.update(changes)
    return LeadFacts(**values)


def test_given_a_full_lead_when_rendering_then_cyrillic_values_fill_every_placeholder(shipped):
    page = render(shipped.get("ru-order-first-contact"), full_lead())
    greeting = page.stages[0].variants[0].text
    assert greeting.startswith("Здравствуйте, Анна Петрова! Меня зовут Ольга, интернет-магазин «ДомТехника».")
    assert "заказу А-1001" in greeting
    assert "сумма 12\u00a0990." in page.stages[1].variants[0].text
    assert page.goal.startswith("Подтвердить заказ А-1001 (сумма 12\u00a0990),")
    assert page.stages[0].title == "Приветствие"
    assert (page.fallbacks, page.markers) == ((), ())
    texts = [page.title, page.goal] + [v.text for st in page.stages for v in st.variants]
    assert not [t for t in texts if "{" in t or "?]" in t]


def test_given_missing_lead_fields_when_rendering_then_fallbacks_and_visible_markers_never_a_crash(shipped):
    page = render(shipped.get("ru-order-first-contact"), LeadFacts(lead_id=7, extra={"amount": None}))
    greeting = page.stages[0].variants[0].text
    assert greeting.startswith("Здравствуйте, уважаемый покупатель! Меня зовут [operator?],")
    assert "В заказе: товары, выбранные на сайте, сумма как в корзине на сайте." in page.stages[1].variants[0].text
    assert set(page.fallbacks) == {"name", "order_number", "amount", "product", "delivery_date"}
    assert page.markers == ("operator",)


def test_given_a_script_without_fallbacks_when_fields_are_missing_then_markers_show_the_gap():
    catalog = catalog_of(script_text(default="true").replace('"Hello {name}"',
                                                             '"Order {order_number}: {amount} {{RUB}}"'))
    page = render(catalog.scripts[0], LeadFacts(extra=["not", "a", "mapping"]))   # type: ignore[arg-type]
    assert page.stages[0].variants[0].text == "Order [order_number?]: [amount?] {RUB}"
    assert page.markers == ("order_number", "amount")


@pytest.mark.parametrize("language, amount, shown", [
    ("ru", Decimal("15490.00"), "15\u00a0490"), ("ru", 99.5, "99,5"), ("ru", 1500, "1\u00a0500"),
    ("en", Decimal("1234567.50"), "1,234,567.5"), ("en", 12990.0, "12,990"), ("en", float("nan"), "[amount?]"),
    ("ru", "  7 990 ₽ ", "7 990 ₽"), ("ru", "", "[amount?]"), ("ru", True, "[amount?]"),
])
def test_given_amounts_of_any_type_when_rendering_then_they_read_naturally(language, amount, shown):
    text = script_text(language=language, default="true").replace('"Hello {name}"', '"Sum: {amount}"')
    page = render(catalog_of(text).scripts[0], LeadFacts(extra={"amount": amount}))
    assert page.stages[0].variants[0].text == f"Sum: {shown}"


def test_given_a_stored_lead_when_facts_are_loaded_then_the_script_renders_from_the_database(sqlite_db):
    lead_id = add_lead(sqlite_db, name="Сергей Иванов", extra={"amount": 5000, "language": "ru"}, contacts=1)
    facts = load_lead_facts(sqlite_db, lead_id, "Мария")
    assert (facts.name, facts.contact_number, facts.language, facts.operator_name) == ("Сергей Иванов", 2, "ru",
                                                                                       "Мария")
    with pytest.raises(NotFound):
        load_lead_facts(sqlite_db, lead_id + 100)


# ---------------------------------------------------------------- gaps (both databases)

def add_lead(db, name="Анна", extra=None, contacts=0) -> int:
    with db.write() as session:
        lead = Lead(received_at=NOW, source="test", phone_e164="+79123456789", name=name, product="Пылесос",
                    order_number="А-1", extra=extra, status="new", contacts_count=contacts)
        session.add(lead)
        session.flush()
        return lead.id


def add_operator_and_attempt(db, lead_id: int) -> tuple[int, int]:
    with db.write() as session:
        operator = Operator(name="Ольга", interface=f"PJSIP/op{lead_id}", created_at=NOW)
        session.add(operator)
        session.flush()
        attempt = CallAttempt(lead_id=lead_id, attempt_no=1, daemon_id="test", state="ended", claimed_at=NOW,
                              operator_id=operator.id)
        session.add(attempt)
        session.flush()
        return operator.id, attempt.id


def count_gaps(db) -> int:
    with db.read() as session:
        return session.query(ScriptGap).count()


def test_given_flags_when_reporting_then_same_questions_group_by_script_most_frequent_first(db):
    lead_a, lead_b = add_lead(db), add_lead(db, name="Борис")
    operator_id, attempt_id = add_operator_and_attempt(db, lead_a)
    asked = [("ru-order-first-contact", 2, "Есть ли рассрочка?", lead_a, attempt_id),
             ("ru-order-first-contact", 2, "есть ли  рассрочка", lead_b, None),
             ("ru-order-first-contact", 1, "Есть ли рассрочка!", lead_b, None),
             ("ru-order-first-contact", 2, "Можно ли оплатить «Долями»?", lead_a, None),
             ("ru-order-second-contact", 1, "Привезёте ночью?", None, None),
             ("ru-order-second-contact", 1, "привезете ночью", None, None)]
    for n, (script_id, version, question, lead_id, attempt) in enumerate(asked):
        flag_gap(db, script_id, version, question, lead_id, attempt, operator_id, NOW + timedelta(minutes=n))

    report = gap_report(db)
    assert [(g.script_id, g.count, g.leads, g.versions) for g in report] == [
        ("ru-order-first-contact", 3, 2, (1, 2)),
        ("ru-order-first-contact", 1, 1, (2,)),
        ("ru-order-second-contact", 2, 0, (1,)),
    ]
    assert report[0].question == "Есть ли рассрочка?"
    assert report[0].first_flagged == NOW and report[0].last_flagged == NOW + timedelta(minutes=2)
    assert [g.count for g in gap_report(db, script_id="ru-order-second-contact")] == [2]
    assert [g.question for g in gap_report(db, since=NOW + timedelta(minutes=3))] == [
        "Можно ли оплатить «Долями»?", "Привезёте ночью?"]


def test_given_bad_flags_then_a_clear_error_and_nothing_is_stored(db):
    lead_a, lead_b = add_lead(db), add_lead(db)
    _operator, attempt_of_a = add_operator_and_attempt(db, lead_a)
    with pytest.raises(UsageError, match="empty"):
        flag_gap(db, "s", 1, "   ", lead_a, None, None, NOW)
    with pytest.raises(NotFound, match="no lead with id"):
        flag_gap(db, "s", 1, "Вопрос?", lead_b + 1000, None, None, NOW)
    with pytest.raises(UsageError, match=f"belongs to lead {lead_a}"):
        flag_gap(db, "s", 1, "Вопрос?", lead_b, attempt_of_a, None, NOW)
    with pytest.raises(UsageError, match="naive"):
        flag_gap(db, "s", 1, "Вопрос?", None, None, None, datetime(2026, 11, 23, 9, 30))
    with pytest.raises(UsageError, match="version"):
        flag_gap(db, "s", 0, "Вопрос?", None, None, None, NOW)
    assert count_gaps(db) == 0


def test_given_questions_with_different_spelling_then_normalization_groups_only_the_same_words():
    assert normalize_question("  Привезёте   НОЧЬЮ?! ") == normalize_question("привезете ночью")
    assert normalize_question("«Можно картой?»") == "можно картой"
    assert normalize_question("Можно картой?") != normalize_question("Можно наличными?")


# ---------------------------------------------------------------- the CLI as a subprocess

def dialer(*args: str, db_url: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}
    env.pop("DIALER_SCRIPTS_DIRECTORY", None)
    env.pop("DIALER_CONFIG", None)
    if db_url:
        env["DIALER_DB_URL"] = db_url
    proc = subprocess.run([str(DIALER), *args], capture_output=True, text=True, encoding="utf-8", env=env,
                          timeout=60, cwd=Path(__file__).parent)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_given_the_shipped_catalog_when_validate_runs_then_it_exits_0():
    proc = dialer("scripts", "validate")
    assert "catalog OK: 10 script version(s)" in proc.stdout


def test_given_a_broken_catalog_when_validate_runs_then_it_exits_1_with_file_and_line(tmp_path):
    write(tmp_path, "a.yaml", script_text(default="true") + "  small_talk:\n    - x\n")
    write(tmp_path, "b.yaml", 'id: b\ntitle: "unclosed\n')
    proc = dialer("scripts", "validate", str(tmp_path), check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert f"{tmp_path / 'a.yaml'}:14: unknown stage 'small_talk'" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'b.yaml'}:2: broken YAML")
    assert "2 error(s)" in proc.stderr
    listed = dialer("scripts", "--dir", str(tmp_path), "list", check=False)
    assert listed.returncode == 1 and "a.yaml:14" in listed.stderr


def test_given_a_lead_when_select_render_flag_and_gaps_run_then_cyrillic_goes_end_to_end(sqlite_db):
    lead_id = add_lead(sqlite_db, name="Анна Петрова", extra={"amount": 12990})
    url = str(sqlite_db.url)
    selected = dialer("scripts", "select", "--lead", str(lead_id), db_url=url)
    assert f"lead {lead_id}, contact 1: ru-order-first-contact v2" in selected.stdout

    page = dialer("scripts", "render", "ru-order-first-contact", "--lead", str(lead_id), "--operator", "Ольга",
                  "--format", "json", db_url=url)
    rendered = json.loads(page.stdout)
    assert rendered["stages"][0]["variants"][0]["text"].startswith("Здравствуйте, Анна Петрова! Меня зовут Ольга")
    table = dialer("scripts", "render", "ru-order-first-contact", "--lead", str(lead_id), db_url=url)
    assert "Анна Петрова" in table.stdout and "[operator?]" in table.stdout

    dialer("scripts", "flag", "ru-order-first-contact", "--question", "Можно оплатить баллами «Спасибо»?",
           "--lead", str(lead_id), db_url=url)
    dialer("scripts", "flag", "ru-order-first-contact", "-q", "можно оплатить баллами спасибо", db_url=url)
    gaps = json.loads(dialer("scripts", "gaps", "--format", "json", db_url=url).stdout)
    assert [(g["script_id"], g["count"], g["versions"], g["leads"]) for g in gaps] == [
        ("ru-order-first-contact", 2, "2", 1)]
    assert gaps[0]["question"] in ("Можно оплатить баллами «Спасибо»?", "можно оплатить баллами спасибо")

    unknown = dialer("scripts", "flag", "no-such-script", "-q", "?", db_url=url, check=False)
    assert unknown.returncode == 1 and "no script 'no-such-script'" in unknown.stderr
