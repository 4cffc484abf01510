"""The PBX's record (CDR, cdr_custom CSV): parsed into the facts the one result table reads."""

from __future__ import annotations

import os

from hypothesis import given, settings, strategies as st

from dialer.ami.results import decide
from dialer.resilience.cdr import CdrLog, CdrRow, format_row, parse_line

OUT = "dialer-outbound"


def _trunk(account: str, disposition: str, userfield: str) -> CdrRow:
    return CdrRow(account, userfield, "1.2", "1.1", "2026-11-24 11:00:00", "", "2026-11-24 11:00:09",
                  disposition, "Local/+79150000001@dialer-trunk-0001;2", "PJSIP/trunk-0002", "dialer-trunk", "Dial", "0")


def _decided(rows):
    from dialer.resilience.cdr import facts_from_rows
    facts, operator = facts_from_rows(rows, OUT)
    return decide(facts)[0].value, operator


def test_given_cdr_lines_as_asterisk_writes_them_when_read_then_each_gives_the_result_the_events_would():
    answered = CdrRow("7", "", "1.1", "1.1", "t", "t", "t", "ANSWERED", "Local/x@dialer-trunk-1;1",
                      "PJSIP/op2-0000002a", OUT, "Queue", "31")
    cases = {
        "busy": [_trunk("7", "BUSY", "cause=17 dial=BUSY")],
        "rejected": [_trunk("7", "FAILED", "cause=21 dial=CHANUNAVAIL")],
        "invalid_number": [_trunk("7", "FAILED", "cause=1 dial=CHANUNAVAIL")],
        "congestion": [_trunk("7", "CONGESTION", "cause=34 dial=CONGESTION")],
        "no_answer": [_trunk("7", "NO ANSWER", "cause=19 dial=NOANSWER")],
        "failed": [_trunk("7", "FAILED", "")],          # no userfield: the disposition alone
        "connected": [_trunk("7", "ANSWERED", "cause=16 dial=ANSWER"), answered],
        "abandoned": [_trunk("7", "ANSWERED", "cause=16 dial=ANSWER"),
                      CdrRow("7", "", "1.1", "1.1", "t", "t", "t", "ANSWERED", "L;1", "", OUT, "Queue", "20")],
        "answering_machine": [_trunk("7", "ANSWERED", "cause=16 dial=ANSWER"),
                              CdrRow("7", "amd=MACHINE", "1.1", "1.1", "t", "t", "t", "ANSWERED", "L;1", "", OUT,
                                     "Hangup", "3")],
    }
    for expected, rows in cases.items():
        lines = "".join(format_row(r) for r in rows).splitlines()
        parsed = [parse_line(line) for line in lines]
        assert parsed == rows
        result, operator = _decided(parsed)
        assert result == expected, (expected, rows)
    assert _decided(cases["connected"])[1] == "PJSIP/op2-0000002a"


def test_given_a_growing_then_rotated_cdr_file_when_read_incrementally_then_each_record_is_read_once(tmp_path):
    path = tmp_path / "dialer.csv"
    log = CdrLog(str(path), OUT)
    assert log.read_new() == 0          # no file yet
    path.write_text(format_row(_trunk("1", "BUSY", "cause=17")) + "garbage line\n" + '"x","y"\n')
    assert log.read_new() == 1 and log.has(1)
    with open(path, "a") as handle:     # a line Asterisk is still writing is kept for the next read
        line = format_row(_trunk("2", "BUSY", "cause=17"))
        handle.write(line[:10])
        handle.flush()
        assert log.read_new() == 0 and not log.has(2)
        handle.write(line[10:])
    assert log.read_new() == 1 and log.has(2)
    os.replace(path, tmp_path / "dialer.csv.1")   # logrotate
    path.write_text(format_row(_trunk("3", "NO ANSWER", "cause=19")))
    assert log.read_new() == 1 and log.has(3)
    assert set(log.facts_for([1, 2, 3, 4])) == {1, 2, 3}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_given_any_line_when_parsed_then_it_is_a_record_of_an_attempt_or_none_never_an_error(line):
    row = parse_line(line)
    assert row is None or isinstance(row.attempt_id, int)
