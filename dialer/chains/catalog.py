"""The e-mail catalog: chains (chains.yaml) and versioned templates (templates/<language>/*.yaml).

Templates use Jinja fields ({{ name }}, {% if product %}...{% endif %}) rendered in a sandbox with
undefined fields refused, so a typo in a field name is a validation error, not a hole in an e-mail.
`load_catalog` returns the catalog or raises CatalogError listing every problem with its file.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Mapping

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from kernel.errors import UsageError
from dialer.chains.model import Chain, Entry, SendWindow, Step, StopReason, gap_problems

PACKAGED_CATALOG = Path(__file__).resolve().parent / "catalog"
LANGUAGES = ("ru", "en")
# Every field a template may use, with what it holds (the preview's sample values in SAMPLE_FIELDS).
FIELDS = {
    "name": "the customer's name (may be empty)",
    "product": "the product or tag of the lead (may be empty)",
    "order_number": "the order number of the lead (may be empty)",
    "shop": "the shop's name (chains.shop_name)",
    "call_url": "where the call to action leads (chains.site_url)",
    "offer_code": "the offer's code: variant and lead id, e.g. GIFT-1042",
    "unsubscribe_url": "the one-click unsubscribe link of this e-mail (required in every body)",
    "step": "this e-mail's number in the chain (1, 2, ...)",
    "steps": "how many e-mails the chain has",
}
REQUIRED_FIELDS = ("unsubscribe_url",)
MANDATORY_STOPS = (StopReason.UNSUBSCRIBE, StopReason.DNC)
SAMPLE_FIELDS = {"name": "Анна", "product": "Пылесос X1", "order_number": "A-1042", "shop": "ДомТехника",
                 "call_url": "https://shop.example/order", "offer_code": "GIFT-1042",
                 "unsubscribe_url": "http://127.0.0.1:8080/unsubscribe/SAMPLE", "step": 1, "steps": 3}

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class CatalogError(UsageError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("the e-mail catalog has problems:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    language: str
    variant: str
    subject: str
    body: str
    path: str

    @property
    def ref(self) -> str:
        """What an e-mail records: id, version, language, and a digest of the text actually used."""
        digest = hashlib.sha256((self.subject + "\0" + self.body).encode("utf-8")).hexdigest()[:8]
        return f"{self.id}.v{self.version}.{self.language}#{digest}"


@dataclass(frozen=True)
class Rendered:
    template: Template
    subject: str
    body: str


@dataclass(frozen=True)
class Catalog:
    chains: tuple[Chain, ...]
    templates: Mapping[tuple[str, str], Template] = field(default_factory=dict)   # (id, language) -> newest

    def chain_for(self, entry: Entry) -> Chain | None:
        return next((chain for chain in self.chains if entry in chain.entries), None)

    def chain(self, chain_id: str) -> Chain:
        for chain in self.chains:
            if chain.id == chain_id:
                return chain
        raise UsageError(f"no chain {chain_id!r}; known: " + ", ".join(c.id for c in self.chains))

    def template(self, template_id: str, language: str) -> Template:
        found = self.templates.get((template_id, language)) or self.templates.get((template_id, LANGUAGES[0]))
        if found is None:
            known = sorted({tid for tid, _ in self.templates})
            raise UsageError(f"no template {template_id!r}; known: " + ", ".join(known))
        return found


def catalog_directory(setting: str) -> Path:
    return Path(setting).expanduser() if setting else PACKAGED_CATALOG


def render(template: Template, fields: Mapping[str, Any]) -> Rendered:
    """The e-mail's subject (one line) and plain-text body, every field filled in."""
    values = {name: fields.get(name) for name in FIELDS}
    values.update({k: v for k, v in fields.items() if k in FIELDS})
    try:
        subject = _compiled(template.subject).render(values)
        body = _compiled(template.body).render(values)
    except (UndefinedError, SecurityError, TemplateSyntaxError) as exc:
        raise UsageError(f"template {template.ref} does not render: {exc}") from None
    return Rendered(template, " ".join(subject.split()), body)


@lru_cache(maxsize=512)
def _compiled(source: str):
    """Compiling a template costs milliseconds; the same text is compiled once per process."""
    return _ENV.from_string(source)


def load_catalog(directory: Path) -> Catalog:
    problems: list[str] = []
    templates = _load_templates(directory / "templates", problems)
    chains = _load_chains(directory / "chains.yaml", problems)
    for chain in chains:
        for number, step in enumerate(chain.steps, start=1):
            for language in LANGUAGES:
                if (step.template, language) not in templates:
                    problems.append(f"chains.yaml: chain {chain.id} step {number}: no template "
                                    f"{step.template!r} in {language}")
    entries = [entry for chain in chains for entry in chain.entries]
    for entry in set(entries):
        if entries.count(entry) > 1:
            problems.append(f"chains.yaml: entry {entry.value!r} is in more than one chain")
    if problems:
        raise CatalogError(problems)
    return Catalog(tuple(chains), templates)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: not valid YAML: {exc}")
    return None


def _load_templates(folder: Path, problems: list[str]) -> dict[tuple[str, str], Template]:
    newest: dict[tuple[str, str], Template] = {}
    versions: set[tuple[str, str, int]] = set()
    if not folder.is_dir():
        problems.append(f"no templates folder {folder}")
        return newest
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")):
        name = str(path.relative_to(folder))
        data = _read_yaml(path, problems)
        if data is None:
            continue
        template = _template(data, name, problems)
        if template is None:
            continue
        key = (template.id, template.language, template.version)
        if key in versions:
            problems.append(f"{name}: {template.id} v{template.version} ({template.language}) is defined twice")
            continue
        versions.add(key)
        current = newest.get(key[:2])
        if current is None or current.version < template.version:
            newest[key[:2]] = template
    ids = {tid for tid, _ in newest}
    for tid in sorted(ids):
        for language in LANGUAGES:
            if (tid, language) not in newest:
                problems.append(f"template {tid}: no {language} text")
    return newest


def _template(data: Any, name: str, problems: list[str]) -> Template | None:
    if not isinstance(data, dict):
        problems.append(f"{name}: a template is a mapping with id, version, language, subject, body")
        return None
    mine: list[str] = []
    for key in ("id", "language", "variant", "subject", "body"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            mine.append(f"{name}: {key} must be non-empty text")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        mine.append(f"{name}: version must be a whole number from 1")
    unknown = sorted(set(data) - {"id", "version", "language", "variant", "subject", "body"})
    if unknown:
        mine.append(f"{name}: unknown keys {', '.join(unknown)}")
    if data.get("language") not in (None, *LANGUAGES) and isinstance(data.get("language"), str):
        mine.append(f"{name}: language {data['language']!r}; one of {', '.join(LANGUAGES)}")
    if mine:
        problems.extend(mine)
        return None
    for part in ("subject", "body"):
        try:
            used = meta.find_undeclared_variables(_ENV.parse(data[part]))
        except TemplateSyntaxError as exc:
            problems.append(f"{name}: {part} line {exc.lineno}: {exc.message}")
            continue
        unknown_fields = sorted(used - set(FIELDS))
        if unknown_fields:
            problems.append(f"{name}: {part} uses unknown fields {', '.join(unknown_fields)}; known: "
                            + ", ".join(FIELDS))
        if part == "body":
            for required in REQUIRED_FIELDS:
                if required not in used:
                    problems.append(f"{name}: the body must contain {{{{ {required} }}}}")
    template = Template(data["id"].strip(), version, data["language"], data["variant"].strip(), data["subject"],
                        data["body"], name)
    try:
        render(template, SAMPLE_FIELDS)
        render(template, {**SAMPLE_FIELDS, "name": None, "product": None, "order_number": None})
    except UsageError as exc:
        problems.append(f"{name}: {exc}")
        return None
    return template


def _load_chains(path: Path, problems: list[str]) -> list[Chain]:
    data = _read_yaml(path, problems) if path.is_file() else problems.append(f"no chains file {path}")
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("chains"), list):
        problems.append("chains.yaml: expected 'chains:' with a list of chains")
        return []
    chains = []
    for index, raw in enumerate(data["chains"], start=1):
        chain = _chain(raw, f"chains.yaml: chain {index}", problems)
        if chain is not None:
            chains.append(chain)
    return chains


def _chain(raw: Any, where: str, problems: list[str]) -> Chain | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        problems.append(f"{where}: a chain is a mapping with an id")
        return None
    where = f"chains.yaml: chain {raw['id']}"
    mine: list[str] = []
    entries = _enum_list(raw.get("entries"), Entry, f"{where}: entries", mine)
    stops = _enum_list(raw.get("stops"), StopReason, f"{where}: stops", mine)
    for stop in MANDATORY_STOPS:
        if stop not in stops:
            mine.append(f"{where}: stops must include {stop.value} (the law and the customer's wish)")
    window = raw.get("window") or {}
    start = _clock(window.get("start") if isinstance(window, dict) else None, f"{where}: window.start", mine)
    end = _clock(window.get("end") if isinstance(window, dict) else None, f"{where}: window.end", mine)
    if start and end and start >= end:
        mine.append(f"{where}: window.start must be before window.end (local daytime)")
    steps = []
    for number, step in enumerate(raw.get("steps") or [], start=1):
        if not isinstance(step, dict) or not isinstance(step.get("template"), str):
            mine.append(f"{where}: step {number} needs a template")
            continue
        days = step.get("delay_days")
        if isinstance(days, bool) or not isinstance(days, (int, float)):
            mine.append(f"{where}: step {number}: delay_days must be a number of days")
            continue
        steps.append(Step(step["template"], timedelta(days=days)))
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        mine.append(f"{where}: version must be a whole number from 1")
    mine.extend(f"{where}: {problem}" for problem in gap_problems(tuple(steps)))
    if mine:
        problems.extend(mine)
        return None
    return Chain(raw["id"], version, tuple(entries), tuple(steps), SendWindow(start, end), tuple(stops),
                 str(raw.get("title") or ""))


def _enum_list(raw: Any, kind: type, where: str, problems: list[str]) -> list:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: a non-empty list, of " + ", ".join(k.value for k in kind))
        return []
    values = []
    for item in raw:
        try:
            values.append(kind(item))
        except ValueError:
            problems.append(f"{where}: {item!r} is not one of " + ", ".join(k.value for k in kind))
    return values


def _clock(raw: Any, where: str, problems: list[str]) -> time | None:
    try:
        return time.fromisoformat(str(raw)) if isinstance(raw, str) else None
    except ValueError:
        pass
    problems.append(f"{where}: a time of day such as \"10:00\"")
    return None
