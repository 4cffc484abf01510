"""Progressive pacing and operator availability (DESIGN §3 Operators, §4 Pacing)."""

from datetime import timedelta

from dialer.pacing import MemberStatus, OperatorBoard, OperatorState, Presence, calls_to_place
from tests.conftest import moscow

NOW = moscow(2026, 11, 23, 11, 0)


def board_with(*members: Presence) -> OperatorBoard:
    board = OperatorBoard()
    board.reset(list(members))
    return board


def test_given_two_free_operators_when_pacing_then_two_calls_and_never_more():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE),
                       Presence("PJSIP/op2", "Иван", MemberStatus.NOT_INUSE))
    assert calls_to_place(len(board.available(NOW))) == 2
    assert board.reserve(1, None, NOW) == "PJSIP/op1"
    assert board.reserve(2, None, NOW) == "PJSIP/op2"
    assert board.reserve(3, None, NOW) is None
    assert calls_to_place(len(board.available(NOW))) == 0


def test_given_paused_operator_then_no_call_is_placed_for_them():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE, paused=True))
    assert board.available(NOW) == []
    board.paused("PJSIP/op1", False)
    assert board.available(NOW) == ["PJSIP/op1"]


def test_given_operator_in_wrap_up_then_available_only_after_it():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE))
    board.connected("PJSIP/op1")
    assert board.get("PJSIP/op1").state(NOW) is OperatorState.ON_CALL
    board.completed("PJSIP/op1", NOW + timedelta(seconds=30))
    assert board.get("PJSIP/op1").state(NOW) is OperatorState.WRAP_UP
    assert board.available(NOW) == []
    assert board.available(NOW + timedelta(seconds=30)) == ["PJSIP/op1"]


def test_given_reserved_operator_when_call_connects_then_reservation_is_released():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE))
    board.reserve(7, "PJSIP/op1", NOW)
    board.connected("PJSIP/op1", attempt_id=7)
    assert board.get("PJSIP/op1").reserved_by is None
    assert board.get("PJSIP/op1").state(NOW) is OperatorState.ON_CALL


def test_given_unavailable_device_then_operator_is_offline():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.UNAVAILABLE))
    assert board.get("PJSIP/op1").state(NOW) is OperatorState.OFFLINE
    assert board.available(NOW) == []


def test_given_named_operator_busy_when_reserving_then_another_free_one_is_held():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.INUSE),
                       Presence("PJSIP/op2", "Иван", MemberStatus.NOT_INUSE))
    assert board.reserve(1, "PJSIP/op1", NOW) == "PJSIP/op2"


def test_given_fresh_queue_status_then_reservations_survive_reset():
    board = board_with(Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE))
    board.reserve(5, None, NOW)
    board.reset([Presence("PJSIP/op1", "Анна", MemberStatus.NOT_INUSE)])
    assert board.available(NOW) == []
    board.release(5)
    assert board.available(NOW) == ["PJSIP/op1"]
