"""Leads as site builders, plain HTML forms and CRMs send them to the webhook.

Two steps, both pure (bytes and dicts in, dicts out), before the JSON lead rules of json_lead apply:

- `decode_form`: an `application/x-www-form-urlencoded` or `multipart/form-data` body as a dict of
  text values, in the charset the request declares (UTF-8 by default, windows-1251 as Russian sites
  send it, or the HTML `_charset_` field). PHP-style names (`lead[phone]`) become nested objects; a
  name given twice keeps all its values, joined with ", " (checkboxes); an uploaded file is kept as its
  file name and size, never its content.
- `map_fields`: their field names to ours. The `[intake.fields]` mapping comes first (our field <- a
  name or a dotted path, case-insensitive, first candidate present wins); then our own names as they
  are (`phone`, `external_id`, ...); then the names the CSV import knows in English and Russian
  (`Phone`, `Телефон`, `Ваше имя`, ...), at the top level first, then inside nested objects such as
  `{"lead": {...}}`. Everything not read as a lead field is kept, in place, in the lead's `extra`.
  A body with no lead field at all is not a lead (a builder checking a new webhook): `None`.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache
from typing import Any, Mapping, Sequence
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import MultipartParser, parse_options_header

from kernel.errors import DialerError
from leads.intake import LEAD_FIELDS
from leads.sources.csv_import import HEADER_NAMES, header_key
from leads.sources.json_lead import ALIASES

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS = 1000
MAX_DEPTH = 3            # how deep nested objects are searched for known field names
MAX_PATH = 8             # longest dotted path in [intake.fields]
OUR_FIELDS = (*LEAD_FIELDS, "source")

# Names web forms use beyond those a CSV header uses (written as header_key leaves them).
WEB_NAMES: dict[str, tuple[str, ...]] = {
    "phone": ("your phone", "ваш телефон", "phone number", "phonenumber", "номер", "tel number"),
    "name": ("your name", "ваше имя", "first name", "fio", "fullname", "username"),
    "comment": ("question", "вопрос", "text", "текст", "your message", "ваше сообщение"),
    "order_number": ("order_id", "orderid", "номер заказа"),
}
_KNOWN = {header_key(alias): name for name, aliases in HEADER_NAMES.items() for alias in aliases}
_KNOWN.update({header_key(alias): name for name, aliases in WEB_NAMES.items() for alias in aliases})
_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")


class FormError(DialerError):
    """The form body cannot be read."""


def charset_of(params: Mapping[str, str], default: str = "utf-8") -> str:
    """The codec named by a `charset=` parameter, or FormError naming it when Python knows no such codec."""
    name = params.get("charset", "").strip().strip('"') or default
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise FormError(f"unknown charset {name!r}; send UTF-8 or windows-1251") from None


def decode_form(body: bytes, media_type: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The form's fields as a dict of text (nested for `a[b]` names), or FormError with the reason."""
    charset = charset_of(params)
    if media_type == "multipart/form-data":
        pairs = _multipart_pairs(body, params, charset)
    else:
        pairs = _urlencoded_pairs(body)
        declared = dict(pairs).get(b"_charset_")
        if declared and "charset" not in params:
            charset = charset_of({"charset": declared.decode("ascii", "replace")})
    if len(pairs) > MAX_FIELDS:
        raise FormError(f"the form has {len(pairs)} fields; at most {MAX_FIELDS} are accepted")
    fields: dict[str, Any] = {}
    for raw_name, raw_value in pairs:
        name, value = _text(raw_name, charset, "a field name"), raw_value
        if name == "_charset_":
            continue
        text = value if isinstance(value, str) else _text(value, charset, f"field {name!r}")
        _put(fields, name, text)
    return fields


def _urlencoded_pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for chunk in body.split(b"&"):
        if not chunk.strip():
            continue
        name, _, value = chunk.partition(b"=")
        pairs.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


def _multipart_pairs(body: bytes, params: Mapping[str, str], charset: str) -> list[tuple[bytes, bytes | str]]:
    boundary = params.get("boundary", "").strip().strip('"')
    if not boundary:
        raise FormError("multipart/form-data without a boundary parameter in Content-Type")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.setdefault("field", bytearray()).extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header.setdefault("value", bytearray()).extend(data[start:end])

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header.get("field", b"")).lower()] = bytes(header.get("value", b""))
        header.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].extend(data[start:end])

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own and ValueError-like errors on broken bodies
        raise FormError(f"the multipart/form-data body cannot be read: {exc}") from None
    if not parts and body.strip():
        raise FormError("the multipart/form-data body has no part with the boundary of its Content-Type")
    pairs: list[tuple[bytes, bytes | str]] = []
    for part in parts:
        disposition, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise FormError("a multipart part has no Content-Disposition name")
        if b"filename" in options:  # a file: its name and size only, a lead has no files
            filename = _text(options[b"filename"], charset, "a file name")
            pairs.append((name, f"{filename} ({len(part['data'])} bytes)"))
            continue
        _, part_options = parse_options_header(part["headers"].get(b"content-type", b""))
        part_charset = charset
        if b"charset" in part_options:
            part_charset = charset_of({"charset": part_options[b"charset"].decode("ascii", "replace")})
        pairs.append((name, _text(bytes(part["data"]), part_charset, f"field {name[:50]!r}")))
    return pairs


def _text(raw: bytes, charset: str, what: str) -> str:
    try:
        text = raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise FormError(f"{what} is not {charset} text (bad byte at offset {exc.start}); "
                        f"say the charset in Content-Type, e.g. charset=windows-1251") from None
    if "\x00" in text:
        raise FormError(f"{what} contains a NUL character")
    return text


def _put(fields: dict[str, Any], name: str, value: str) -> None:
    """Store one field; `lead[phone]` goes to fields["lead"]["phone"], a repeated name joins its values."""
    match = _BRACKETS.match(name)
    path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [name]
    path = [key for key in path if key != ""] or [name]   # `a[]` is a list in PHP: read as repeated `a`
    if len(path) > MAX_PATH:   # deeper than any form nests: kept as the flat name it is
        path = [name]
    node = fields
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {} if child is None else {"": child}
        node = child
    last = path[-1]
    if isinstance(node.get(last), str):
        node[last] = f"{node[last]}, {value}"
    elif isinstance(node.get(last), dict):
        node[last][""] = value
    else:
        node[last] = value


# ---------------------------------------------------------------- their names to ours

def parse_mapping(config: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """`[intake.fields]` as our field -> candidate names; a ValueError says what is wrong."""
    mapping: dict[str, tuple[str, ...]] = {}
    for ours, theirs in config.items():
        name = ALIASES.get(ours, ours)
        if name not in OUR_FIELDS:
            raise ValueError(f"{ours!r} is not a lead field; one of: {', '.join(OUR_FIELDS)}")
        candidates = [theirs] if isinstance(theirs, str) else theirs
        if not isinstance(candidates, list) or not candidates \
                or not all(isinstance(c, str) and c.strip() for c in candidates):
            raise ValueError(f"{ours}: give their field name, a dotted path, or a list of them")
        if any(len(c.split(".")) > MAX_PATH for c in candidates):
            raise ValueError(f"{ours}: a dotted path has at most {MAX_PATH} parts")
        mapping[name] = tuple(c.strip() for c in candidates)
    return mapping


def map_fields(obj: dict[str, Any], mapping: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any] | None:
    """The object with their field names replaced by ours (see the module doc); None when it has no lead."""
    if not mapping and obj and _OUR_KEYS.issuperset(obj) and (set(obj) - {"source", "extra"}):
        return obj   # already in our names (the usual JSON API call): nothing to map, nothing to copy
    out = _copy(obj, MAX_PATH)
    found: dict[str, Any] = {}
    moved_exact: dict[str, Any] = {}
    for ours, candidates in (mapping or {}).items():
        for candidate in candidates:
            hit = _take_path(out, candidate)
            if hit is not _MISSING:
                found[ours] = hit
                break
        if ours in found:
            for key in [k for k, v in ALIASES.items() if v == ours] + [ours]:
                if key in out:
                    moved_exact[key] = out.pop(key)
    exact = {ALIASES.get(key, key) for key in out if ALIASES.get(key, key) in OUR_FIELDS}
    found.update(_take_known(out, set(OUR_FIELDS) - set(found) - exact))
    if not (set(found) | exact) - {"source"}:
        return None
    out.update(found)
    if moved_exact:
        extra = out.get("extra") if isinstance(out.get("extra"), dict) else {}
        out["extra"] = {**extra, **moved_exact}
    return out


_MISSING = object()
_OUR_KEYS = frozenset((*OUR_FIELDS, *ALIASES, "extra"))
_cached_key = lru_cache(maxsize=4096)(header_key)   # form field names repeat from call to call
_NAMES_OF = {ours: frozenset(k for k, v in _KNOWN.items() if v == ours) for ours in OUR_FIELDS}


def _key(name: str) -> str:
    return _cached_key(name) if len(name) <= 64 else header_key(name)   # a bounded cache: short names only


def _take_path(obj: dict[str, Any], path: str) -> Any:
    """Remove and return the value at a name or dotted path (case-insensitive), else _MISSING."""
    flat = _find_key(obj, path)
    if flat is not None and not isinstance(obj[flat], dict):
        return obj.pop(flat)
    segments = path.split(".")
    if len(segments) == 1:
        return _take_nested(obj, header_key(path), depth=0)
    node = obj
    parents = []
    for segment in segments[:-1]:
        key = _find_key(node, segment)
        if key is None or not isinstance(node[key], dict):
            return _MISSING
        parents.append((node, key))
        node = node[key]
    key = _find_key(node, segments[-1])
    if key is None or isinstance(node[key], dict):
        return _MISSING
    value = node.pop(key)
    _prune(parents)
    return value


def _take_known(obj: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """Remove and return the values of the wanted fields found under known names: one walk, shallowest
    level first; of two names of one field in one object (Phone and Телефон) the filled one wins."""
    places: dict[str, tuple[dict, str, list]] = {}
    level: list[tuple[dict, list]] = [(obj, [])]
    for _ in range(MAX_DEPTH + 1):
        deeper: list[tuple[dict, list]] = []
        for node, parents in level:
            for key, value in node.items():
                if isinstance(value, dict):
                    deeper.append((value, [*parents, (node, key)]))
                    continue
                ours = _KNOWN.get(_key(key)) if isinstance(key, str) else None
                if ours not in wanted:
                    continue
                if ours not in places or (places[ours][0] is node and node[places[ours][1]] in ("", None)
                                          and value not in ("", None)):
                    places[ours] = (node, key, parents)
        wanted = wanted - set(places)
        level = deeper
        if not wanted or not level:
            break
    taken = {}
    for ours, (node, key, parents) in places.items():
        taken[ours] = node.pop(key)
    for node, key, parents in places.values():
        _prune(parents)
    return taken


def _take_nested(obj: dict[str, Any], key: str, depth: int) -> Any:
    """Remove and return the first value under a name, shallowest level first, else _MISSING."""
    level: list[tuple[dict, list]] = [(obj, [])]
    for _ in range(MAX_DEPTH + 1):
        deeper = []
        for node, parents in level:
            for name, value in node.items():
                if isinstance(value, dict):
                    deeper.append((value, [*parents, (node, name)]))
                elif isinstance(name, str) and _key(name) == key:
                    del node[name]
                    _prune(parents)
                    return value
        level = deeper
    return _MISSING


def _copy(value: Any, depth: int) -> Any:
    """The objects a mapping may change, copied (MAX_PATH levels); lists and deeper levels are shared."""
    if depth <= 0 or not isinstance(value, dict):
        return value
    return {key: _copy(item, depth - 1) if isinstance(item, dict) else item for key, item in value.items()}


def _find_key(node: dict[str, Any], name: str) -> str | None:
    if name in node:
        return name
    wanted = _key(name)
    return next((key for key in node if isinstance(key, str) and _key(key) == wanted), None)


def _prune(parents: list) -> None:
    """Drop objects left empty once their fields were read (`{"lead": {}}` says nothing)."""
    for node, key in reversed(parents):
        if node[key] == {}:
            del node[key]
