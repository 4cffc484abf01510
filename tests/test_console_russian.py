"""The operator console's Russian view has no English lines (issue 16): the call card, the reason a script
was chosen or is missing, and every refusal the page shows. English stays in the API's `error` and the logs."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from dialer.console import pages
from dialer.console.cards import ScriptBook, load_call_card
from dialer.web.dispositions import Refused
from leads.disposition import DispositionRefused
from scripts_catalog import PACKAGED_CATALOG
from tests.conftest import moscow
from tests.outcome_rows import add_attempt, add_lead, add_operator

NOW = moscow(2026, 11, 24, 11, 0)
MOSCOW = ZoneInfo("Europe/Moscow")
LATIN_WORD = re.compile(r"\b(?=[A-Za-z]*[a-z])[A-Za-z]{3,}\b")  # acronyms such as DNC are Russian usage


class Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.lines.append(data.strip())


def english_lines(html: str, data: set[str]) -> list[str]:
    """Visible text with a Latin word that is not data of the lead, the call or the catalog."""
    parser = Text()
    parser.feed(html)
    found = []
    for line in parser.lines:
        rest = line
        for value in sorted(data, key=len, reverse=True):
            rest = rest.replace(value, "")
        if LATIN_WORD.search(rest):
            found.append(line)
    return found


def card_html(db, book) -> tuple[str, set[str]]:
    operator = add_operator(db, NOW, "Анна")
    lead_id = add_lead(db, NOW - timedelta(minutes=7), name="Иван Петров", order_number="A-1001")
    add_attempt(db, lead_id, NOW - timedelta(hours=1), result="busy", attempt_no=1)
    call = add_attempt(db, lead_id, NOW, operator_id=operator, attempt_no=2)
    card = load_call_card(db, call, book, "Анна")
    # IANA zone ids are identifiers (data), like the phone: the customer's zone(s) shown on the card too.
    data = {card.phone or "", card.order_number or "", card.source or "", "RUB", "Europe/Moscow",
            *card.customer_zones}
    if card.script.script is not None:
        data.add(card.script.script.script_id)
    return pages.call_card(card, MOSCOW, NOW, "Europe/Moscow"), {d for d in data if d}


def test_the_call_card_and_the_chosen_scripts_reason_are_russian(db):
    html, data = card_html(db, ScriptBook(PACKAGED_CATALOG, "ru"))
    assert "Контакт №1" in html
    assert english_lines(html, data) == []


def test_a_missing_script_is_explained_in_russian(db, tmp_path):
    shutil.copytree(PACKAGED_CATALOG, tmp_path / "catalog")
    broken = tmp_path / "catalog" / "ru" / "order-first-contact.v2.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("version: 2", "version: два"), encoding="utf-8")
    html, data = card_html(db, ScriptBook(tmp_path / "catalog", "ru"))
    assert "Сценария нет: каталог сценариев сейчас не читается" in html
    assert english_lines(html, data) == []


def test_every_refusal_the_page_shows_has_russian_words():
    for status in (401, 403, 404, 409, 422, 503):
        message = Refused(status, "an English error for the API").response().body.decode()
        assert re.search(r'"message":"[^"]*[а-я]', message), message
    negative = DispositionRefused("amount -5 is negative", "сумма заказа не может быть отрицательной")
    body = Refused(422, str(negative), negative.words).response().body.decode()
    assert "сумма заказа не может быть отрицательной" in body and "negative" in body
