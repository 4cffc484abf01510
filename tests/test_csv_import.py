"""CSV import (DESIGN §2, §8): columns found by name in Russian or English, a mapping for the rest,
encodings, malformed rows reported by line number without stopping the import, nothing stored from a
file that cannot be read as asked, and the `dialer leads import` command."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from kernel.db.models import DncEntry, Lead
from kernel.errors import UsageError
from leads.intake import Intake, LeadIn
from leads.sources.csv_import import EmptyFile, import_csv, plan_columns
from tests.conftest import utc

T0 = utc(2026, 11, 23, 9, 0)


@pytest.fixture
def intake(db):
    return Intake(db, default_region="RU", dedup_window=timedelta(hours=24))


@pytest.fixture
def clock():
    return ManualClock(T0)


def csv_file(tmp_path, text: str, encoding: str = "utf-8", name: str = "leads.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def all_leads(db) -> list[Lead]:
    with db.read() as session:
        return list(session.scalars(select(Lead).order_by(Lead.id)))


# ---- headers

def test_given_russian_headers_when_imported_then_every_field_lands_in_its_place(db, intake, clock, tmp_path):
    path = csv_file(tmp_path,
                    "ФИО;Телефон;Номер заказа;Товар;Комментарий;Источник;Удобное время;Часовой пояс;Регион;Город\n"
                    "Иванов Иван;8 (912) 345-67-89;ЗК-1;Диван;перезвонить;site-form;после 18:00;"
                    "Asia/Vladivostok;Приморский край;Владивосток\n")
    report = import_csv(path, intake, clock)
    assert report.counts == {"new": 1, "duplicate": 0, "dnc": 0, "invalid": 0}
    [lead] = all_leads(db)
    assert (lead.name, lead.phone_e164, lead.order_number, lead.product, lead.comment, lead.source,
            lead.preferred_time, lead.timezone, lead.region, lead.extra) == (
        "Иванов Иван", "+79123456789", "ЗК-1", "Диван", "перезвонить", "site-form", "после 18:00",
        "Asia/Vladivostok", "Приморский край", {"Город": "Владивосток"})
    assert lead.received_at == T0
    assert report.delimiter == ";"
    assert report.columns["Телефон"] == "phone" and report.columns["Город"] == "extra"


def test_given_english_headers_in_any_case_with_a_bom_when_imported_then_recognized(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "\ufeff Phone Number ,FULL NAME,Order-Number,tag,Comments,preferred_time,TimeZone\n"
                              "+7 912 345 67 89,Anna,A-1,sofa,call me,evening,Europe/Moscow\n")
    report = import_csv(path, intake, clock)
    assert report.counts["new"] == 1
    [lead] = all_leads(db)
    assert (lead.phone_e164, lead.name, lead.order_number, lead.product, lead.comment, lead.preferred_time,
            lead.timezone, lead.extra, lead.source) == (
        "+79123456789", "Anna", "A-1", "sofa", "call me", "evening", "Europe/Moscow", None, "csv")


@pytest.mark.parametrize("header, field", [
    ("тел", "phone"), ("Тел.", "phone"), ("номер телефона", "phone"), ("mobile", "phone"), ("Мобильный", "phone"),
    ("имя", "name"), ("клиент", "name"), ("фио", "name"), ("заказ", "order_number"), ("№ заказа", "order_number"),
    ("external_id", "order_number"), ("order", "order_number"), ("продукт", "product"), ("tag", "product"),
    ("источник", "source"), ("комментарий", "comment"), ("удобное время", "preferred_time"),
    ("часовой пояс", "timezone"), ("регион", "region"), ("region", "region"),
])
def test_given_a_known_header_variant_when_planned_then_it_maps_to_its_field(header, field):
    other = "phone" if field != "phone" else "name"
    plan = plan_columns([other, header])
    assert plan.describe([other, header])[header] == field


def test_given_no_phone_column_when_imported_then_refused_before_anything_is_stored(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "Клиент;Контакт\nИван;89123456789\n")
    with pytest.raises(UsageError) as caught:
        import_csv(path, intake, clock)
    message = str(caught.value)
    assert "no phone column" in message and "'Контакт'" in message and "--map" in message
    assert all_leads(db) == []


def test_given_two_phone_columns_when_imported_then_refused_asking_which(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone;телефон\n89123456789;89161234567\n")
    with pytest.raises(UsageError, match="'phone' and 'телефон' are both read as phone"):
        import_csv(path, intake, clock)
    assert all_leads(db) == []
    report = import_csv(path, intake, clock, mapping={"телефон": "extra"})
    assert report.counts["new"] == 1
    assert all_leads(db)[0].extra == {"телефон": "89161234567"}


# ---- the mapping option

def test_given_a_mapping_when_imported_then_unnamed_columns_are_read_as_told(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "Контакт;Клиент;Сделка\n8 912 345 67 89;Пётр;D-77\n")
    report = import_csv(path, intake, clock, mapping={"контакт": "phone", "Сделка": "order_number"})
    assert report.counts["new"] == 1
    [lead] = all_leads(db)
    assert (lead.phone_e164, lead.name, lead.order_number, lead.extra) == ("+79123456789", "Пётр", "D-77", None)


def test_given_a_mapping_that_beats_a_known_name_when_imported_then_the_mapping_wins(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "телефон;мобильный\n84951234567;89123456789\n")
    import_csv(path, intake, clock, mapping={"мобильный": "phone"})
    [lead] = all_leads(db)
    assert (lead.phone_e164, lead.extra) == ("+79123456789", {"телефон": "84951234567"})


@pytest.mark.parametrize("mapping, words", [({"Телефон": "mobile"}, "not a lead field"),
                                            ({"Нет такой": "phone"}, "no column 'Нет такой'")])
def test_given_a_bad_mapping_when_imported_then_refused_and_nothing_stored(db, intake, clock, tmp_path, mapping,
                                                                           words):
    path = csv_file(tmp_path, "Телефон\n89123456789\n")
    with pytest.raises(UsageError, match=words):
        import_csv(path, intake, clock, mapping=mapping)
    assert all_leads(db) == []


# ---- delimiters and encodings

@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_given_any_usual_delimiter_when_imported_then_detected(db, intake, clock, tmp_path, delimiter):
    path = csv_file(tmp_path, delimiter.join(["name", "phone", "comment"]) + "\n"
                    + delimiter.join(["Иван", "89123456789", '"да, после 18:00; срочно"']) + "\n")
    report = import_csv(path, intake, clock)
    assert report.delimiter == delimiter
    assert all_leads(db)[0].comment == "да, после 18:00; срочно"


def test_given_an_explicit_delimiter_when_imported_then_it_is_used(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone|name\n89123456789|Иван\n")
    report = import_csv(path, intake, clock, delimiter="|")
    assert (report.delimiter, all_leads(db)[0].name) == ("|", "Иван")


def test_given_a_cp1251_file_when_imported_with_that_encoding_then_cyrillic_is_right(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "ФИО;Телефон;Комментарий\nЁлкина Юлия;89123456789;перезвонить «завтра»\n",
                    encoding="cp1251")
    report = import_csv(path, intake, clock, encoding="cp1251")
    assert report.counts["new"] == 1 and report.encoding == "cp1251"
    [lead] = all_leads(db)
    assert (lead.name, lead.comment) == ("Ёлкина Юлия", "перезвонить «завтра»")


def test_given_a_cp1251_file_read_as_utf8_when_imported_then_refused_with_a_hint_and_nothing_stored(
        db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone;name\n89123456789;Ivan\n89161234567;Иван\n", encoding="cp1251")
    with pytest.raises(UsageError) as caught:
        import_csv(path, intake, clock)
    message = str(caught.value)
    assert "line 3" in message and "--encoding cp1251" in message and "Nothing was imported" in message
    assert all_leads(db) == []


def test_given_a_bad_byte_deep_in_the_file_when_imported_then_only_that_row_is_malformed(db, intake, clock,
                                                                                         tmp_path):
    rows = [f"9{i:09d}".replace("9000", "9123", 1) + f";Клиент номер {i}" for i in range(1, 3001)]
    data = ("phone;name\n" + "\n".join(rows) + "\n").encode("utf-8")
    assert len(data) > 64 * 1024
    bad_line = 2501                                  # the header is line 1
    lines = data.split(b"\n")
    lines[bad_line - 1] = lines[bad_line - 1].replace("Клиент".encode(), "Клиент".encode("cp1251"))
    path = tmp_path / "deep.csv"
    path.write_bytes(b"\n".join(lines))
    report = import_csv(path, intake, clock)
    assert report.malformed == 1
    [row] = report.malformed_rows
    assert row.line == bad_line and "utf-8" in row.problem
    assert report.stored == 2999


@pytest.mark.parametrize("encoding, words", [("klingon", "unknown encoding"), ("utf-16", "not supported")])
def test_given_an_unusable_encoding_when_imported_then_refused(intake, clock, tmp_path, encoding, words):
    with pytest.raises(UsageError, match=words):
        import_csv(csv_file(tmp_path, "phone\n89123456789\n"), intake, clock, encoding=encoding)


# ---- empty files, missing files

@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_given_an_empty_file_when_imported_then_a_clear_error(db, intake, clock, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(EmptyFile, match="empty"):
        import_csv(path, intake, clock)


def test_given_blank_lines_before_the_header_when_imported_then_the_header_is_found(db, intake, clock, tmp_path):
    report = import_csv(csv_file(tmp_path, "\r\n\r\nphone;name\r\n89123456789;Иван\r\n"), intake, clock)
    assert (report.stored, report.columns) == (1, {"phone": "phone", "name": "name"})


def test_given_a_header_without_rows_when_imported_then_an_empty_report(db, intake, clock, tmp_path):
    report = import_csv(csv_file(tmp_path, "phone;name\n"), intake, clock)
    assert (report.rows, report.stored, report.malformed) == (0, 0, 0)


def test_given_a_missing_file_when_imported_then_a_usage_error(intake, clock, tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        import_csv(tmp_path / "absent.csv", intake, clock)


# ---- malformed rows

def test_given_malformed_rows_when_imported_then_they_are_reported_by_line_and_the_rest_is_stored(
        db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "\n".join([
        "phone;name;timezone;comment",                      # 1
        "89123456789;Иван;;",                                 # 2 ok
        "89161234567;Пётр",                                   # 3 too few fields
        f"89031234567;{'Я' * 201};;",                         # 4 name too long
        "89051234567;Анна;Europe/Atlantis;",                  # 5 unknown zone
        '89061234567;"Ольга";;"многострочный',                # 6-7 a quoted field over two lines: fine
        'комментарий"',
        "89071234567;Нина;;;лишнее",                          # 8 an extra field with data
        "89081234567;Вера;;;",                                # 9 an extra empty field: fine
        "89091234567;Зоя\x00;;",                              # 10 NUL
        '89101234567;"Лев"x;;',                               # 11 broken quoting
        "89111234567;Яна;;",                                  # 12 ok
    ]) + "\n")
    report = import_csv(path, intake, clock)
    problems = {m.line: m.problem for m in report.malformed_rows}
    assert sorted(problems) == [3, 4, 5, 8, 10, 11]
    assert "2 fields, the header has 4" in problems[3]
    assert "name is longer than 200" in problems[4]
    assert "Europe/Atlantis" in problems[5]
    assert "5 fields" in problems[8]
    assert "NUL" in problems[10]
    assert "quoting" in problems[11]
    assert report.malformed == 6
    assert [lead.name for lead in all_leads(db)] == ["Иван", "Ольга", "Вера", "Яна"]
    assert all_leads(db)[1].comment == "многострочный\nкомментарий"
    assert report.rows == report.stored + report.malformed + report.empty_rows == 10


def test_given_a_quote_never_closed_when_imported_then_the_rows_it_swallowed_are_reported_as_one(
        db, intake, clock, tmp_path):
    path = csv_file(tmp_path, 'phone;name\n89123456789;Иван\n89161234567;"Пётр\n89031234567;Анна\n')
    report = import_csv(path, intake, clock)
    [row] = report.malformed_rows
    assert (row.line, row.last_line, row.lines()) == (3, 4, "3-4")
    assert [lead.name for lead in all_leads(db)] == ["Иван"]


def test_given_many_malformed_rows_when_imported_then_the_first_are_listed_and_all_are_counted(
        intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone;name\n" + "89123456789\n" * 30)
    report = import_csv(path, intake, clock, max_listed=5)
    assert report.malformed == 30
    assert [m.line for m in report.malformed_rows] == [2, 3, 4, 5, 6]


def test_given_empty_rows_when_imported_then_they_are_skipped_and_counted(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone;name;Город\n89123456789;Иван;\n;;\n  ; ;\n\n89161234567;Пётр;\n")
    report = import_csv(path, intake, clock)
    assert (report.stored, report.empty_rows, report.malformed) == (2, 2, 0)


def test_given_a_row_with_a_name_but_no_phone_when_imported_then_it_is_stored_as_invalid(db, intake, clock,
                                                                                         tmp_path):
    report = import_csv(csv_file(tmp_path, "phone;name\n;Иван\nпозвоните;Пётр\n"), intake, clock)
    assert report.counts["invalid"] == 2
    assert [(lead.status, lead.invalid_reason) for lead in all_leads(db)] == [
        ("invalid", "no_phone"), ("invalid", "unparsable_phone")]


# ---- extra columns

def test_given_unknown_columns_when_imported_then_they_are_kept_in_extra(db, intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone;utm_source;;utm_source;Город\n89123456789;яндекс;x;vk;\n")
    report = import_csv(path, intake, clock)
    [lead] = all_leads(db)
    assert lead.extra == {"utm_source": "яндекс", "column 3": "x", "utm_source (2)": "vk"}
    assert report.columns["Город"] == "extra"


# ---- statuses and what was there before

def test_given_a_file_of_mixed_leads_when_imported_then_the_counts_match_what_is_stored(db, intake, clock,
                                                                                       tmp_path):
    with db.write() as session:
        session.add(DncEntry(phone_e164="+79031234567", reason="просил не звонить", added_by="t", added_at=T0))
    path = csv_file(tmp_path, "phone;order\n89123456789;A-1\n+7 912 345 67 89;A-1\n89031234567;\n"
                              "9999999999;\n89123456789;A-2\n")
    report = import_csv(path, intake, clock)
    assert report.counts == {"new": 2, "duplicate": 1, "dnc": 1, "invalid": 1}
    assert [lead.status for lead in all_leads(db)] == ["new", "duplicate", "dnc", "invalid", "new"]


def test_given_leads_stored_before_when_a_file_repeats_them_then_the_old_rows_are_unchanged(db, intake, clock,
                                                                                           tmp_path):
    before = intake.submit([LeadIn("+79123456789", name="Иван", order_number="A-1"),
                            LeadIn("+79161234567", name="Пётр")], T0 - timedelta(hours=1))
    snapshot = [{c.name: getattr(lead, c.name) for c in Lead.__table__.columns} for lead in all_leads(db)]
    path = csv_file(tmp_path, "phone;name;order_number\n8 912 345 67 89;Иван Иванович;A-1\n"
                              "89161234567;Пётр Петрович;\n89031234567;Анна;\n")
    report = import_csv(path, intake, clock)
    assert report.counts == {"new": 1, "duplicate": 2, "dnc": 0, "invalid": 0}
    after = all_leads(db)
    assert [{c.name: getattr(lead, c.name) for c in Lead.__table__.columns} for lead in after[:2]] == snapshot
    assert [(lead.status, lead.duplicate_of_id) for lead in after[2:4]] == [
        ("duplicate", before[0].lead_id), ("duplicate", before[1].lead_id)]


# ---- streaming and batches

class RecordingIntake(Intake):
    """The real intake, remembering the size and time of each batch it was given."""

    def __init__(self, db, **kwargs):
        super().__init__(db, **kwargs)
        self.batches: list[tuple[int, object]] = []

    def submit(self, leads, received_at, **options):
        self.batches.append((len(leads), received_at))
        return super().submit(leads, received_at, **options)


class TickingClock(ManualClock):
    def now(self):
        moment = super().now()
        self.advance(timedelta(seconds=1))
        return moment


def test_given_a_batch_size_when_imported_then_rows_go_in_batches_timed_by_the_clock(db, tmp_path):
    intake = RecordingIntake(db, dedup_window=timedelta(hours=24))
    path = csv_file(tmp_path, "phone\n" + "".join(f"8912345670{i}\n" for i in range(5)))
    import_csv(path, intake, TickingClock(T0), batch_size=2)
    assert intake.batches == [(2, T0), (2, T0 + timedelta(seconds=1)), (1, T0 + timedelta(seconds=2))]
    assert [lead.received_at for lead in all_leads(db)] == [T0, T0, T0 + timedelta(seconds=1),
                                                           T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


class CountingStream(io.RawIOBase):
    """A non-seekable byte stream that counts what was read from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 8192))
        buffer[:len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)


def test_given_a_large_stream_when_imported_then_it_is_read_as_it_goes_not_all_at_once(db, intake, clock):
    data = ("phone;name\n" + "".join(f"89{i:09d};Клиент {i}\n" for i in range(8_000))).encode()
    stream = CountingStream(data)
    seen_at_first_batch: list[int] = []
    progress = []

    def on_progress(p):
        progress.append(p)
        if not seen_at_first_batch:
            seen_at_first_batch.append(stream.bytes_read)

    report = import_csv(io.BufferedReader(stream), intake, clock, batch_size=500, on_progress=on_progress)
    assert report.rows == 8_000
    assert seen_at_first_batch[0] < len(data) / 2
    assert [p.rows for p in progress] == sorted(p.rows for p in progress)
    assert progress[-1].bytes_read == len(data) and progress[-1].total_bytes is None


def test_given_a_file_when_imported_then_progress_reports_its_size(intake, clock, tmp_path):
    path = csv_file(tmp_path, "phone\n89123456789\n89161234567\n")
    progress = []
    import_csv(path, intake, clock, on_progress=progress.append)
    assert progress[-1].bytes_read == progress[-1].total_bytes == path.stat().st_size


def test_given_a_report_when_serialized_then_json_has_the_counts_and_lines(intake, clock, tmp_path):
    report = import_csv(csv_file(tmp_path, "phone;name\n89123456789;Иван\n1;2;3\n"), intake, clock)
    data = json.loads(json.dumps(report.as_dict(), ensure_ascii=False))
    assert (data["new"], data["malformed"], data["malformed_rows"][0]["line"]) == (1, 1, 3)
    assert asdict(report.malformed_rows[0])["line"] == 3


# ---- the command

CYRILLIC_CSV = ("ФИО;Телефон;Номер заказа;Город\n"
                "Иванов Иван;8 (912) 345-67-89;ЗК-1;Москва\n"
                "Иванов Иван;+7 912 345 67 89;ЗК-1;Москва\n"
                "Петрова Анна;9161234567;;Казань\n"
                "Фейк;9999999999;;\n"
                "Сломанная строка;89031234567\n")


def test_given_a_cyrillic_csv_when_imported_by_the_cli_then_the_summary_has_the_counts(run_dialer, cli_db,
                                                                                       tmp_path):
    csv_file(tmp_path, CYRILLIC_CSV, name="лиды.csv")
    result = run_dialer("leads", "import", "лиды.csv", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["new"], summary["duplicate"], summary["dnc"], summary["invalid"], summary["malformed"]) == (
        2, 1, 0, 1, 1)
    assert summary["malformed_rows"] == [{"line": 6, "last_line": 6, "problem": "2 fields, the header has 4"}]
    assert {lead.name for lead in all_leads(cli_db)} == {"Иванов Иван", "Петрова Анна", "Фейк"}
    table = run_dialer("leads", "import", "лиды.csv")
    assert table.returncode == 0, table.stderr
    for words in ("new", "duplicate", "invalid", "malformed", "Город", "2 fields, the header has 4"):
        assert words in table.stdout


def test_given_a_cp1251_file_when_imported_by_the_cli_then_encoding_errors_exit_2_with_the_hint(
        run_dialer, cli_db, tmp_path):
    csv_file(tmp_path, CYRILLIC_CSV, encoding="cp1251")
    refused = run_dialer("leads", "import", "leads.csv")
    assert refused.returncode == 2
    assert "--encoding cp1251" in refused.stderr
    assert all_leads(cli_db) == []
    accepted = run_dialer("leads", "import", "leads.csv", "--encoding", "cp1251", "--format", "json")
    assert accepted.returncode == 0 and json.loads(accepted.stdout)["new"] == 2
    assert "Петрова Анна" in {lead.name for lead in all_leads(cli_db)}


def test_given_no_phone_column_when_imported_by_the_cli_then_exit_2_and_nothing_stored(run_dialer, cli_db,
                                                                                       tmp_path):
    csv_file(tmp_path, "Клиент;Контакт\nИван;89123456789\n")
    result = run_dialer("leads", "import", "leads.csv")
    assert result.returncode == 2 and "no phone column" in result.stderr
    assert all_leads(cli_db) == []
    mapped = run_dialer("leads", "import", "leads.csv", "--map", "Контакт=phone", "--format", "json")
    assert mapped.returncode == 0 and json.loads(mapped.stdout)["new"] == 1


def test_given_an_empty_file_or_a_bad_flag_when_imported_by_the_cli_then_the_exit_code_says_so(
        run_dialer, cli_db, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    empty = run_dialer("leads", "import", "empty.csv")
    assert empty.returncode == 1 and "empty" in empty.stderr
    csv_file(tmp_path, "phone\n89123456789\n")
    bad_map = run_dialer("leads", "import", "leads.csv", "--map", "phone")
    assert bad_map.returncode == 2 and "COLUMN=field" in bad_map.stderr
    assert all_leads(cli_db) == []


def test_given_standard_input_when_imported_by_the_cli_then_it_is_read(run_dialer, cli_db):
    result = run_dialer("leads", "import", "-", "--format", "json", input="телефон,имя\n89123456789,Иван\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["new"] == 1
    assert [lead.name for lead in all_leads(cli_db)] == ["Иван"]
