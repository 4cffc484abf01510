"""Which operator a call is dialed for: evenly, by product, by skill level (DESIGN §3 Operators)."""

from leads.policy.distribution import OperatorLoad, choose_operator

ANNA = OperatorLoad(1, "Анна", "PJSIP/op1", skills=("Пылесос Vortex X2",), level=1, calls_today=12)
IVAN = OperatorLoad(2, "Иван", "PJSIP/op2", skills=(), level=3, calls_today=4)
OLGA = OperatorLoad(3, "Ольга", "PJSIP/op3", skills=("пылесос  vortex x2", "Матрас Сон+"), level=2, calls_today=20)
PAVEL = OperatorLoad(4, "Павел", "PJSIP/op4", skills=(), level=3, calls_today=4)


def test_given_even_strategy_then_fewest_calls_today_and_lowest_id_on_a_tie():
    assert choose_operator([ANNA, IVAN, OLGA, PAVEL], "even", "Пылесос Vortex X2").operator_id == IVAN.id
    assert choose_operator([PAVEL, IVAN], "even").operator_id == IVAN.id


def test_given_product_strategy_then_skilled_operators_first_even_when_busier():
    choice = choose_operator([ANNA, IVAN, OLGA], "product", "Пылесос Vortex X2")
    assert choice.operator_id == ANNA.id
    assert "skilled" in choice.reason


def test_given_product_nobody_knows_then_any_operator_by_fewest_calls():
    choice = choose_operator([ANNA, IVAN, OLGA], "product", "Роутер Wi-Fi 6")
    assert choice.operator_id == IVAN.id
    assert "no available operator is skilled" in choice.reason


def test_given_skill_strategy_then_skilled_first_then_highest_level():
    assert choose_operator([ANNA, IVAN, OLGA], "skill", "Пылесос Vortex X2").operator_id == OLGA.id
    assert choose_operator([ANNA, IVAN, OLGA, PAVEL], "skill", None).operator_id == IVAN.id


def test_given_matching_ignores_case_and_spaces_in_cyrillic_products():
    assert OLGA.knows("ПЫЛЕСОС Vortex X2")
    assert not IVAN.knows("Пылесос Vortex X2")


def test_given_preferred_operator_available_then_chosen_whatever_the_strategy():
    assert choose_operator([ANNA, IVAN], "even", preferred_id=ANNA.id).operator_id == ANNA.id
    assert choose_operator([IVAN], "even", preferred_id=ANNA.id).operator_id == IVAN.id


def test_given_nobody_available_then_no_choice():
    assert choose_operator([], "even") is None
