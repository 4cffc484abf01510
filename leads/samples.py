"""Sample web leads as Russian online stores send them: messy phones, duplicates, fakes, Cyrillic.

Used by `dialer demo` and the benchmarks; seeded, so a run can be repeated.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

FIRST_NAMES = ["Анна", "Иван", "Мария", "Сергей", "Ольга", "Дмитрий", "Елена", "Алексей", "Наталья",
               "Павел", "Татьяна", "Андрей", "Юлия", "Михаил", "Светлана", "Никита", "Ксения"]
LAST_NAMES = ["Иванова", "Петров", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов",
              "Новикова", "Морозов", "Волкова", "Егоров"]
PRODUCTS = ["Пылесос Vortex X2", "Кофемашина Arabica 300", "Смартфон Nova 12", "Чайник Teplo",
            "Матрас Сон+", "Роутер Wi-Fi 6"]
SOURCES = ["site-form", "callback-widget", "yandex-direct", "vk-ads", "crm"]
COMMENTS = [None, None, "Перезвоните после обеда", "Нужна доставка в Казань", "Есть ли рассрочка?",
            "Звонить только на мобильный", "Хочу уточнить цвет"]
# Landlines whose zone phonenumbers knows: Vladivostok (+7 4232), Kaliningrad (+7 4012), Novosibirsk (+7 383).
LANDLINE_PREFIXES = ["4232", "4012", "383"]


def _mobile(rng: random.Random) -> str:
    return "9" + "".join(str(rng.randint(0, 9)) for _ in range(9))


def _landline(rng: random.Random) -> str:
    prefix = rng.choice(LANDLINE_PREFIXES)
    return prefix + "".join(str(rng.randint(0, 9)) for _ in range(10 - len(prefix)))


def spell_messily(national: str, rng: random.Random) -> str:
    """The ways people type the same Russian number into a web form."""
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return rng.choice([
        f"8 ({a}) {b}-{c}-{d}", f"+7 {a} {b} {c} {d}", national, f"8{national}", f"+7({a}){b}{c}{d}",
        f"7 {a} {b}-{c}-{d}", f"+7-{a}-{b}-{c}-{d}",
    ])


def sample_leads(count: int, seed: int = 7, duplicate_share: float = 0.1, invalid_share: float = 0.05,
                 landline_share: float = 0.1) -> Iterator[dict[str, Any]]:
    """Webhook-shaped lead dicts (phone, name, order_number, product, source, comment)."""
    rng = random.Random(seed)
    sent: list[dict[str, Any]] = []
    for n in range(count):
        roll = rng.random()
        if sent and roll < duplicate_share:
            original = rng.choice(sent)
            lead = dict(original)
            national = "".join(ch for ch in original["phone"] if ch.isdigit())[-10:]
            lead["phone"] = spell_messily(national, rng)
        elif roll < duplicate_share + invalid_share:
            lead = {"phone": rng.choice(["", "не помню", "12345", "+7 999 999 99 99", "8 800 555-35-35"]),
                    "name": rng.choice(FIRST_NAMES)}
        else:
            national = _landline(rng) if rng.random() < landline_share else _mobile(rng)
            lead = {"phone": spell_messily(national, rng),
                    "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    "product": rng.choice(PRODUCTS), "source": rng.choice(SOURCES)}
            if rng.random() < 0.7:
                lead["order_number"] = f"Z-{100000 + n}"
            comment = rng.choice(COMMENTS)
            if comment:
                lead["comment"] = comment
            sent.append(lead)
        yield lead
