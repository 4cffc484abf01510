"""Leads from a CSV file (`dialer leads import`): columns found by name, rows streamed into Intake.submit.

How a file is read:
- The first line is the header. Columns are recognized by name, in English or Russian, whatever the
  case, spacing, `_`/`-` and a UTF-8 BOM ("Телефон", "PHONE", "номер заказа", "Order-Number"...);
  `mapping` (the CLI's `--map COLUMN=field`) names the rest. Any other column is kept in the lead's
  `extra`. A file without a phone column is refused before anything is stored.
- The delimiter (`,` `;` or tab) is the one the header line uses most, else csv.Sniffer's guess,
  else `,`. The encoding is given (default UTF-8; Russian Excel writes cp1251). If the first 64 KB
  are not valid text in that encoding, the whole file is refused before anything is stored: it is
  almost certainly in another encoding. Undecodable bytes further on make only their row malformed.
- Rows are read one at a time and submitted in batches of `batch_size` (one transaction each), so
  memory stays flat whatever the size of the file.
- A malformed row (wrong number of fields, broken quoting, undecodable bytes, a NUL character, an
  over-long field, an unknown time zone) is not stored; it is reported with its line number and the
  import goes on. A row whose cells are all empty (Excel's trailing `;;;;` lines) is skipped and
  counted. Every other row becomes a stored lead: new, duplicate, dnc or invalid.
"""

from __future__ import annotations

import codecs
import csv
import io
import multiprocessing
import os
import re
from collections import Counter
from queue import Empty
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence

from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock
from kernel.errors import DialerError, InvalidPhone, UsageError
from leads.intake import Intake, LeadIn, field_problems
from leads.lead import LeadStatus
from leads.phone import Phone, normalize_phone

SAMPLE_BYTES = 64 * 1024
REPORTED_STATUSES = (LeadStatus.NEW, LeadStatus.DUPLICATE, LeadStatus.DNC, LeadStatus.INVALID)
DELIMITERS = (",", ";", "\t")
EXTRA = "extra"  # a mapping target: keep the column in the lead's extra
FIELDS = ("phone", "name", "order_number", "product", "source", "comment", "preferred_time", "timezone",
          "region")

# Header names recognized without configuration, written as _header_key() leaves them.
HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "phone number", "telephone", "tel", "mobile", "mobile phone", "cell", "msisdn",
              "contact phone", "телефон", "тел", "номер телефона", "мобильный", "мобильный телефон",
              "контактный телефон", "сотовый"),
    "name": ("name", "full name", "client", "customer", "customer name", "client name", "contact name",
             "имя", "фио", "клиент", "имя клиента", "покупатель", "контактное лицо"),
    "order_number": ("order number", "order", "order id", "order no", "external id", "номер заказа", "заказ",
                     "id заказа"),
    "product": ("product", "tag", "product name", "item", "товар", "продукт", "тег", "услуга"),
    "source": ("source", "lead source", "источник"),
    "comment": ("comment", "comments", "note", "notes", "message", "комментарий", "примечание", "сообщение"),
    "preferred_time": ("preferred time", "call time", "callback time", "best time to call", "удобное время",
                       "время звонка", "удобное время звонка"),
    "timezone": ("timezone", "time zone", "tz", "часовой пояс"),
    "region": ("region", "регион"),
}
_KNOWN_HEADERS = {alias: name for name, aliases in HEADER_NAMES.items() for alias in aliases}
_SEPARATORS = re.compile(r"[\s_\-.:#]+")


@dataclass(frozen=True)
class MalformedRow:
    line: int        # first line of the row in the file (the header is line 1)
    last_line: int   # last line (a quoted field may span lines)
    problem: str

    def lines(self) -> str:
        return str(self.line) if self.line == self.last_line else f"{self.line}-{self.last_line}"


@dataclass(frozen=True)
class ImportProgress:
    rows: int                 # rows read so far
    bytes_read: int
    total_bytes: int | None   # None when reading a stream of unknown size


@dataclass(frozen=True)
class ImportReport:
    file: str
    encoding: str
    delimiter: str
    columns: dict[str, str]              # header -> lead field, or "extra"
    rows: int                            # data rows read, empty ones included
    counts: dict[str, int]               # stored leads by status: new, duplicate, dnc, invalid
    malformed: int                       # rows refused (not stored)
    malformed_rows: tuple[MalformedRow, ...]  # the first of them, with line numbers
    empty_rows: int                      # rows with every cell empty (skipped)

    @property
    def stored(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "encoding": self.encoding, "delimiter": self.delimiter, "columns": self.columns,
            "rows": self.rows, "stored": self.stored, **self.counts, "malformed": self.malformed,
            "empty_rows": self.empty_rows,
            "malformed_rows": [{"line": m.line, "last_line": m.last_line, "problem": m.problem}
                               for m in self.malformed_rows],
        }


class EmptyFile(DialerError):
    """The file is empty: there is no header line, nothing was imported."""


class ImportStopped(DialerError):
    """The import stopped part way; the batches before the reported line are stored."""


@dataclass(frozen=True)
class ColumnPlan:
    """Where each column of the header goes: a lead field by index, or a key of `extra`."""

    fields: tuple[tuple[str, int], ...]
    extra: tuple[tuple[str, int], ...]
    width: int

    def describe(self, header: Sequence[str]) -> dict[str, str]:
        plan = {header[i].strip(): name for name, i in self.fields}
        plan.update({key: EXTRA for key, _ in self.extra})
        return plan


def plan_columns(header: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnPlan:
    """Decide what every column is: explicit `mapping` first, then the known names, then `extra`."""
    keys = [_header_key(name) for name in header]
    targets: dict[int, str] = {}
    for column, target in (mapping or {}).items():
        if target not in FIELDS and target != EXTRA:
            raise UsageError(f"--map {column}={target}: {target!r} is not a lead field; one of: "
                             + ", ".join((*FIELDS, EXTRA)))
        matches = [i for i, key in enumerate(keys) if key == _header_key(column)]
        if not matches:
            raise UsageError(f"--map {column}={target}: the file has no column {column!r}; its columns: "
                             + ", ".join(repr(h.strip()) for h in header))
        for i in matches:
            targets[i] = target
    explicit = {t for t in targets.values() if t != EXTRA}
    for i, key in enumerate(keys):
        if i not in targets:
            known = _KNOWN_HEADERS.get(key)
            targets[i] = known if known and known not in explicit else EXTRA

    by_field: dict[str, list[int]] = {}
    for i, target in sorted(targets.items()):
        if target != EXTRA:
            by_field.setdefault(target, []).append(i)
    for name, indexes in by_field.items():
        if len(indexes) > 1:
            columns = " and ".join(repr(header[i].strip()) for i in indexes)
            raise UsageError(f"columns {columns} are both read as {name}; say which one is with "
                             f"--map \"COLUMN={name}\" (and --map \"OTHER=extra\" for the other)")
    if "phone" not in by_field:
        raise UsageError("the file has no phone column; its columns: "
                         + ", ".join(repr(h.strip()) for h in header)
                         + ". Name the phone column with --map \"COLUMN=phone\"")
    extra_names = _extra_names([(i, header[i]) for i, t in sorted(targets.items()) if t == EXTRA])
    return ColumnPlan(tuple((name, idx[0]) for name, idx in by_field.items()), tuple(extra_names), len(header))


def _header_key(name: str) -> str:
    text = name.replace("\ufeff", "").replace("№", " номер ").casefold().replace("ё", "е")
    return _SEPARATORS.sub(" ", text).strip()


header_key = _header_key  # the same comparison for web form field names (leads.sources.web_form)


def _extra_names(columns: list[tuple[int, str]]) -> list[tuple[str, int]]:
    """Keys of `extra`: the header as written; an empty one is "column N", a repeated one gets " (2)"."""
    names: list[tuple[str, int]] = []
    seen: Counter[str] = Counter()
    for i, raw in columns:
        name = raw.replace("\ufeff", "").strip() or f"column {i + 1}"
        seen[name] += 1
        names.append((name if seen[name] == 1 else f"{name} ({seen[name]})", i))
    return names


def import_csv(source: str | os.PathLike | BinaryIO, intake: Intake, clock: Clock, *,
               mapping: Mapping[str, str] | None = None, delimiter: str | None = None,
               encoding: str = "utf-8", lead_source: str = "csv", batch_size: int = 5000,
               on_progress: Callable[[ImportProgress], None] | None = None,
               max_listed: int = 20, workers: int = 1) -> ImportReport:
    """Read a CSV file (a path, or a binary stream) and submit its rows to `intake` in batches.

    `workers=2` and a path: the file is read, checked and its phones normalized in a second process
    while this one stores the batches (two cores busy); the report, the progress calls and what is
    stored are the same as with one. A stream is always read here.

    Raises UsageError (nothing stored) when the file cannot be read as asked: no such file, unknown
    encoding, wrong encoding, no phone column, a bad --map; EmptyFile when there is no header line.
    """
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        options = _ReadOptions(name, mapping, delimiter, _check_encoding(encoding), lead_source, batch_size,
                               max_listed)
        if workers > 1:
            _open(name).close()   # no such file, no permission: refused here, before a process starts
            return _store(_read_in_worker(options, intake.default_region), options, intake, clock, on_progress)
        with _open(name) as stream:
            total = os.fstat(stream.fileno()).st_size
            return _store(_Reader(stream, total, options).events(), options, intake, clock, on_progress)
    name = getattr(source, "name", "<stream>")
    options = _ReadOptions(str(name), mapping, delimiter, _check_encoding(encoding), lead_source, batch_size,
                           max_listed)
    return _store(_Reader(source, None, options).events(), options, intake, clock, on_progress)


def _open(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot be read: {exc.strerror}") from None


class _Lines:
    """The file's lines, decoded one by one; remembers the lines no lead may come from: bytes the
    encoding cannot read, NUL characters."""

    def __init__(self, head: bytes, stream: BinaryIO, encoding: str) -> None:
        self.encoding = encoding
        self.line_no = 0
        self.bytes_read = 0
        self.unreadable: dict[int, str] = {}
        self._raw = _raw_lines(head, stream)

    def __iter__(self) -> Iterator[str]:
        encoding, unreadable = self.encoding, self.unreadable
        for raw in self._raw:
            self.line_no += 1
            self.bytes_read += len(raw)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                unreadable[self.line_no] = (f"byte 0x{raw[exc.start]:02x} is not valid {encoding} text "
                                             f"(wrong --encoding?)")
                text = raw.decode(encoding, "replace")
            if "\x00" in text:
                unreadable.setdefault(self.line_no, "contains a NUL character, which no database stores")
            if self.line_no == 1:
                text = text.lstrip("\ufeff")
            yield text

    def problem_between(self, first: int, last: int) -> str | None:
        if not self.unreadable:
            return None
        problem = None
        for line in [n for n in self.unreadable if n <= last]:
            message = self.unreadable.pop(line)
            if line >= first and problem is None:
                problem = f"line {line}: {message}"
        return problem


def _raw_lines(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """`head` (already read) then the rest of the stream, split after each b"\\n"."""
    partial = b""
    for line in io.BytesIO(head):
        if line.endswith(b"\n"):
            yield line
        else:
            partial = line
    if partial:
        yield partial + stream.readline()
    yield from stream


@dataclass(frozen=True)
class _ReadOptions:
    name: str
    mapping: Mapping[str, str] | None
    delimiter: str | None
    encoding: str
    lead_source: str
    batch_size: int
    max_listed: int


@dataclass(frozen=True)
class _Opened:
    delimiter: str
    columns: dict[str, str]


@dataclass(frozen=True)
class _Batch:
    leads: list[LeadIn]
    line: int                                        # the line the batch ends on (for ImportStopped)
    phones: list[Phone | InvalidPhone] | None = None  # normalized by the reading process


@dataclass(frozen=True)
class _Finished:
    rows: int
    malformed: int
    malformed_rows: tuple[MalformedRow, ...]
    empty_rows: int


class _Reader:
    """The reading half of an import: the file -> _Opened, then _Batch and ImportProgress in file order,
    then _Finished. Touches no database, so it can run in another process."""

    def __init__(self, stream: BinaryIO, total: int | None, options: _ReadOptions) -> None:
        self.stream, self.total, self.options = stream, total, options
        self.name, self.encoding, self.batch_size = options.name, options.encoding, options.batch_size
        self.rows = self.empty_rows = self.malformed = 0
        self.malformed_rows: list[MalformedRow] = []

    def events(self) -> Iterator[_Opened | _Batch | ImportProgress | _Finished]:
        head = self.stream.read(SAMPLE_BYTES)
        if not head.strip().lstrip(codecs.BOM_UTF8).strip():
            raise EmptyFile(f"{self.name} is empty: there is no header line, nothing was imported")
        if b"\r" in head.rstrip(b"\r") and b"\n" not in head:
            raise UsageError(f"{self.name}: lines end with a bare CR (old Mac format); save the file as "
                             f"\"CSV UTF-8\" and import it again. Nothing was imported")
        sample = self._check_decodable(head)
        delimiter = self.options.delimiter or detect_delimiter(sample)
        lines = _Lines(head, self.stream, self.encoding)
        reader = csv.reader(iter(lines), delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
        try:
            header = next(reader)
            while not header:             # blank lines before the header
                header = next(reader)
        except StopIteration:
            raise EmptyFile(f"{self.name} has no header line, nothing was imported") from None
        except csv.Error as exc:
            raise UsageError(f"{self.name}: the header line cannot be read as CSV: {exc}") from None
        plan = plan_columns(header, self.options.mapping)
        yield _Opened(delimiter, plan.describe(header))
        yield from self._read_rows(reader, lines, plan)
        yield _Finished(self.rows, self.malformed, tuple(self.malformed_rows), self.empty_rows)

    def _check_decodable(self, head: bytes) -> str:
        decoder = codecs.getincrementaldecoder(self.encoding)()
        try:
            return decoder.decode(head, final=len(head) < SAMPLE_BYTES).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            line = head.count(b"\n", 0, exc.start) + 1
            hint = " (an Excel export in Russian is usually cp1251: --encoding cp1251)" \
                if self.encoding.startswith("utf") else ""
            raise UsageError(f"{self.name}: line {line} is not valid {self.encoding} text (byte "
                             f"0x{head[exc.start]:02x}); give the file's encoding with --encoding{hint}. "
                             f"Nothing was imported") from None

    def _read_rows(self, reader: Any, lines: _Lines, plan: ColumnPlan) -> Iterator[_Batch | ImportProgress]:
        batch: list[LeadIn] = []
        last_line = reader.line_num
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self.rows += 1
                self._refuse(last_line + 1, reader.line_num, f"broken quoting: {exc}")
                last_line = reader.line_num
                continue
            first, last_line = last_line + 1, reader.line_num
            if not record:
                continue  # a blank line
            self.rows += 1
            unreadable = lines.problem_between(first, last_line)
            if unreadable:
                self._refuse(first, last_line, unreadable)
                continue
            lead = self._lead(record, plan, first, last_line)
            if lead is None:
                continue
            batch.append(lead)
            if len(batch) >= self.batch_size:
                yield _Batch(batch, first)
                batch = []
                yield self._progress(lines)
        if batch:
            yield _Batch(batch, last_line)
        yield self._progress(lines)

    def _lead(self, record: list[str], plan: ColumnPlan, first: int, last: int) -> LeadIn | None:
        if len(record) != plan.width:
            if len(record) < plan.width or any(cell.strip() for cell in record[plan.width:]):
                self._refuse(first, last, f"{len(record)} fields, the header has {plan.width}")
                return None
        values = {name: record[i].strip() or None for name, i in plan.fields}
        extra = {key: record[i].strip() for key, i in plan.extra if record[i].strip()}
        if not extra and not any(values.values()):
            self.empty_rows += 1
            return None
        source = values.pop("source", None) or self.options.lead_source
        lead = LeadIn(**values, extra=extra or None, source=source)
        problems = field_problems(lead)
        if problems:
            self._refuse(first, last, "; ".join(problems))
            return None
        return lead

    def _refuse(self, first: int, last: int, problem: str) -> None:
        self.malformed += 1
        if len(self.malformed_rows) < self.options.max_listed:
            self.malformed_rows.append(MalformedRow(first, last, problem))

    def _progress(self, lines: _Lines) -> ImportProgress:
        return ImportProgress(self.rows, lines.bytes_read, self.total)


def _store(events: Iterator[Any], options: _ReadOptions, intake: Intake, clock: Clock,
           on_progress: Callable[[ImportProgress], None] | None) -> ImportReport:
    """The storing half: each batch through Intake.submit (one transaction each), in file order."""
    counts: Counter[str] = Counter({status.value: 0 for status in REPORTED_STATUSES})
    opened: _Opened | None = None
    name = options.name
    for event in events:
        if isinstance(event, _Opened):
            opened = event
        elif isinstance(event, _Batch):
            try:
                # Every lead passed field_problems in _lead: a malformed row is refused alone, not its batch.
                outcomes = intake.submit(event.leads, clock.now(), fields_checked=True, phones=event.phones)
            except SQLAlchemyError as exc:
                close = getattr(events, "close", None)
                if close is not None:
                    close()   # stops the reading process
                raise ImportStopped(f"{name}: import stopped at the batch ending on line {event.line}: the "
                                    f"database refused it ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                                    f"{sum(counts.values())} leads from the lines before are stored") from exc
            for outcome in outcomes:
                counts[outcome.status.value] += 1
        elif isinstance(event, ImportProgress):
            if on_progress is not None:
                on_progress(event)
        elif isinstance(event, _Finished):
            assert opened is not None
            return ImportReport(name, options.encoding, opened.delimiter, opened.columns, event.rows,
                                dict(counts), event.malformed, event.malformed_rows, event.empty_rows)
    raise ImportStopped(f"{name}: the reading of the file stopped before its end; "
                        f"{sum(counts.values())} leads from the lines before are stored")


# --- the reading process ---------------------------------------------------------------------------
# Batches travel pickled through a bounded queue: the reader is at most QUEUED batches ahead, so the
# memory stays flat whatever the size of the file. The process is spawned (not forked): the importing
# process has threads (the WAL checkpointer) and open database connections a fork would copy.

QUEUED = 4


def _read_in_worker(options: _ReadOptions, default_region: str) -> Iterator[Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(QUEUED)
    process = context.Process(target=_worker, args=(options, default_region, queue), daemon=True,
                              name="csv-import-reader")
    process.start()
    try:
        while True:
            try:
                event = queue.get(timeout=1.0)
            except Empty:
                if not process.is_alive():
                    raise ImportStopped(f"{options.name}: the reading process ended unexpectedly (exit code "
                                        f"{process.exitcode})") from None
                continue
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, _Packed):
                event = event.unpack()
            yield event
            if isinstance(event, _Finished):
                return
    finally:
        if process.is_alive():
            process.terminate()
        process.join(10)
        queue.close()


def _worker(options: _ReadOptions, default_region: str, queue: Any) -> None:
    try:
        with _open(options.name) as stream:
            reader = _Reader(stream, os.fstat(stream.fileno()).st_size, options)
            for event in reader.events():
                if isinstance(event, _Batch):
                    event = _Packed.pack(event, [_normalized(lead.phone, default_region) for lead in event.leads])
                queue.put(event)
    except DialerError as exc:
        queue.put(exc)
    except Exception as exc:   # noqa: BLE001 - reported in the importing process, with its reason
        queue.put(ImportStopped(f"{options.name}: the file could not be read: {type(exc).__name__}: {exc}"))


@dataclass(frozen=True)
class _Packed:
    """A _Batch as plain tuples: unpickling 5,000 frozen dataclasses took half the storing process's
    CPU; tuples of strings unpickle ~10 times faster and the objects are rebuilt in one pass."""

    leads: list[tuple]
    line: int
    phones: list[tuple[str | None, str | None]]   # (e164, extension), or (None, the reason it is invalid)

    @staticmethod
    def pack(batch: _Batch, phones: list[Phone | InvalidPhone]) -> "_Packed":
        return _Packed([tuple(lead.__dict__.values()) for lead in batch.leads], batch.line,
                       [(p.e164, p.extension) if isinstance(p, Phone) else (None, p.reason) for p in phones])

    def unpack(self) -> _Batch:
        return _Batch([LeadIn(*values) for values in self.leads], self.line,
                      [Phone(e164, extra) if e164 is not None else InvalidPhone(extra) for e164, extra in self.phones])


def _normalized(raw: str | None, region: str) -> Phone | InvalidPhone:
    try:
        return normalize_phone(raw, region)
    except InvalidPhone as exc:
        return exc


def _check_encoding(encoding: str) -> str:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}; use utf-8 (the default) or cp1251 "
                         f"(Excel in Russian)") from None
    try:
        ascii_compatible = "\n\r,;\t\"phone".encode(info.name) == b"\n\r,;\t\"phone"
    except UnicodeEncodeError:
        ascii_compatible = False
    if not ascii_compatible:
        raise UsageError(f"encoding {encoding!r} is not supported for CSV import; save the file as "
                         f"UTF-8 or use an 8-bit encoding such as cp1251")
    return "utf-8" if info.name == "utf-8-sig" else info.name


def detect_delimiter(sample: str) -> str:
    """The delimiter the header line uses most; else csv.Sniffer's guess on the sample; else a comma."""
    header = next((line for line in sample.split("\n") if line.strip()), "")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts.values())
    if best and list(counts.values()).count(best) == 1:
        return max(counts, key=counts.__getitem__)
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","
