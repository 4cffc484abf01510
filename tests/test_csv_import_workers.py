"""CSV import with a reading process (issue 18): the file read and its phones normalized in a second
process, the batches stored here. What is stored, the report and the progress must be exactly those of
the import in one process, malformed rows and dedup included; a file that cannot be read as asked is
refused before anything is stored, as without the process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import DncEntry, Lead
from kernel.errors import UsageError
from leads.intake import Intake
from leads.sources.csv_import import EmptyFile, import_csv
from tests.conftest import utc

T0 = utc(2026, 11, 23, 9, 0)

# A messy export: repeats by phone and order (dedup rules A and B), a DNC number, numbers that cannot be
# called, a row with too many fields, an over-long name, an unknown zone, an undecodable byte, broken
# quoting at the end, empty rows, Cyrillic everywhere, a UTF-8 BOM.
MESSY = ("\ufeffТелефон;ФИО;Номер заказа;Часовой пояс;Город\r\n"
         "8 (912) 345-67-89;Иван Петров;A-1;;Москва\r\n"
         "+7 912 345 67 89;Иван Петров;A-1;;Москва\r\n"           # same phone and order: duplicate
         "89123456789;Иван;;;\r\n"                                  # same phone within the window
         "8 916 000-00-01;Ольга;B-7;Asia/Vladivostok;Владивосток\r\n"
         "8 903 111-22-33;Не звонить;;;\r\n"                         # on the DNC list
         "не звонить;Сергей;;;\r\n"                                  # cannot be called: invalid
         "89261234567;Анна;C-1;;Казань;лишнее\r\n"                   # too many fields
         "89261234568;" + "Я" * 201 + ";;;\r\n"                      # name too long
         "89261234569;Пётр;;Mars/Olympus;\r\n"                       # unknown time zone
         ";;;;\r\n"                                                  # empty
         "8 (495) 123-45-67;Офис;;;Москва\r\n")
# Undecodable bytes in the first 64 KB refuse the whole file: 3,000 good rows go before them.
FILLER = "".join(f"8 927 {n:07d};Клиент {n};;;\r\n" for n in range(3000))
MESSY_BYTES = ((MESSY + FILLER).encode() + b"89261234570;\xff\xfe;;;\r\n"
               + "89261234571;\"Мария;;;\r\n".encode())


def _rows(db: Database) -> list[tuple]:
    with db.read() as session:
        return [(lead.id, lead.phone_raw, lead.phone_e164, lead.name, lead.order_number, lead.status,
                 lead.invalid_reason, lead.duplicate_of_id, lead.timezone, lead.extra, lead.source)
                for lead in session.scalars(select(Lead).order_by(Lead.id))]


def _import(db: Database, path, workers: int, **kwargs):
    with db.write() as session:
        if session.get(DncEntry, "+79031112233") is None:
            session.add(DncEntry(phone_e164="+79031112233", reason="asked", added_by="test", added_at=T0))
    intake = Intake(db, default_region="RU", dedup_window=timedelta(hours=24))
    progress = []
    report = import_csv(path, intake, ManualClock(T0), workers=workers, on_progress=progress.append, **kwargs)
    return report, progress


@pytest.fixture
def reference_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'reference.db'}")
    upgrade(database)
    yield database
    database.dispose()


def test_given_a_messy_file_when_imported_with_a_reading_process_then_all_is_as_in_one_process(
        db, reference_db, tmp_path):
    path = tmp_path / "messy.csv"
    path.write_bytes(MESSY_BYTES)
    expected, expected_progress = _import(reference_db, path, workers=1, batch_size=500)
    report, progress = _import(db, path, workers=2, batch_size=500)

    assert report == expected
    assert progress == expected_progress
    assert _rows(db) == _rows(reference_db)
    # the rule, by hand: 3,013 data rows; 3,007 stored (new: 3 + 3,000, duplicate: 2, dnc: 1, invalid: 1),
    # 5 malformed, 1 empty
    assert (report.rows, report.stored, report.malformed, report.empty_rows) == (3013, 3007, 5, 1)
    assert report.counts == {"new": 3003, "duplicate": 2, "dnc": 1, "invalid": 1}
    assert len(progress) == 7   # after each of the 6 full batches (3,007 leads by 500), and at the end
    assert [m.line for m in report.malformed_rows] == [8, 9, 10, 3013, 3014]
    assert "0xff" in report.malformed_rows[3].problem and "quoting" in report.malformed_rows[4].problem


def test_given_a_cp1251_file_when_imported_with_a_reading_process_then_it_is_decoded_the_same(
        db, reference_db, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("Телефон;ФИО\r\n8 912 345-67-89;Иван Петров\r\n".encode("cp1251"))
    expected, _ = _import(reference_db, path, workers=1, encoding="cp1251")
    report, _ = _import(db, path, workers=2, encoding="cp1251")
    assert report == expected and _rows(db)[0][3] == "Иван Петров"


@pytest.mark.parametrize("content, error, words", [
    (b"", EmptyFile, "empty"),
    (b"name;city\n\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd;x\n", UsageError, "no phone column"),
    ("Телефон;ФИО\n89123456789;Иван\n".encode("cp1251"), UsageError, "not valid utf-8"),
])
def test_given_a_file_that_cannot_be_read_as_asked_when_imported_with_a_reading_process_then_nothing_is_stored(
        db, tmp_path, content, error, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(error, match=words):
        _import(db, path, workers=2)
    assert _rows(db) == []


def test_given_no_such_file_when_imported_with_a_reading_process_then_it_is_refused_with_the_name(db, tmp_path):
    with pytest.raises(UsageError, match="absent.csv: no such file"):
        _import(db, tmp_path / "absent.csv", workers=2)
