"""Check catalog files and build scripts from them; every error names its file and line.

Per file: known keys only, required fields with the right types, known stages, variants that are
not empty, placeholders that are well formed and have a source, FAQ entries with a question and
an answer. Across files: one id+version only once, one default script per language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scripts_catalog.errors import Problem
from scripts_catalog.loader import Located, iter_documents
from scripts_catalog.model import (BUILTIN_SOURCES, STAGES, Catalog, ContactRange, FaqEntry, FaqKind,
                                   Placeholder, Script, ScriptStatus, Stage, Variant, is_known_source,
                                   sorted_scripts)
from scripts_catalog.render import PLACEHOLDER_NAME, tokens

SCRIPT_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
LANGUAGE = re.compile(r"[a-z]{2,3}")
CONTACT = re.compile(r"^\s*(\d+)\s*(?:(\+)|-\s*(\d+))?\s*$")

KEYS = {"id", "version", "status", "language", "title", "goal", "contact", "products", "default", "priority",
        "placeholders", "stages", "faq", "notes"}
REQUIRED = ("id", "version", "language", "title", "goal", "contact", "stages")
PLACEHOLDER_KEYS = {"source", "value", "fallback"}
FAQ_KEYS = {"question", "answer", "kind"}
VARIANT_KEYS = {"text", "label"}


@dataclass(frozen=True)
class ValidationReport:
    catalog: Catalog           # the scripts that could be built (all of them when there is no problem)
    problems: tuple[Problem, ...]
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_directory(directory: Path) -> ValidationReport:
    """Read and check every catalog file under `directory`."""
    problems: list[Problem] = []
    scripts: list[Script] = []
    files = 0
    if not directory.is_dir():
        return ValidationReport(Catalog((), str(directory)),
                                (Problem(str(directory), 0, "the catalog folder does not exist"),), 0)
    for path, document in iter_documents(directory):
        files += 1
        if isinstance(document, Problem):
            problems.append(document)
            continue
        script, file_problems = build_script(document, str(path))
        problems.extend(file_problems)
        if script is not None and not file_problems:
            scripts.append(script)
    if files == 0:
        problems.append(Problem(str(directory), 0, "no script files (*.yaml) in the catalog folder"))
    problems.extend(check_catalog(scripts))
    return ValidationReport(Catalog(tuple(sorted_scripts(scripts)), str(directory)), tuple(problems), files)


def check_catalog(scripts: list[Script]) -> list[Problem]:
    """Rules across files: id+version unique, at most one default script per language."""
    problems = []
    seen: dict[tuple[str, int], Script] = {}
    for script in sorted(scripts, key=lambda s: (s.path, s.line)):
        first = seen.get(script.key)
        if first is not None:
            problems.append(Problem(script.path, script.line,
                                    f"duplicate script {script.id!r} version {script.version}: "
                                    f"already in {first.path}:{first.line}"))
        else:
            seen[script.key] = script
    unique = Catalog(tuple(seen.values()))
    defaults: dict[str, list[Script]] = {}
    for script in unique.newest_active():
        if script.default:
            defaults.setdefault(script.language, []).append(script)
    for language, found in sorted(defaults.items()):
        if len(found) > 1:
            where = ", ".join(f"{s.id} ({s.path}:{s.line})" for s in found)
            problems.append(Problem(found[-1].path, found[-1].line,
                                    f"more than one active default script for language {language!r}: {where}"))
    languages = {s.language for s in unique.newest_active()}
    for language in sorted(languages - set(defaults)):
        problems.append(Problem(unique.directory or "catalog", 0,
                                f"no active default script (default: true) for language {language!r}: "
                                f"leads no other script fits would get none"))
    return problems


class _Builder:
    """Turns one file's Located tree into a Script, collecting problems instead of stopping at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    # -- typed field readers: each returns None (and records a problem) when the value does not fit

    def text(self, node: Located, what: str) -> str | None:
        if isinstance(node.value, bool) or not isinstance(node.value, (str, int, float)):
            self.problem(node.line, f"{what} must be text")
            return None
        text = str(node.value).strip()
        if not text:
            self.problem(node.line, f"{what} is empty")
            return None
        return text

    def integer(self, node: Located, what: str, minimum: int) -> int | None:
        if isinstance(node.value, bool) or not isinstance(node.value, int) or node.value < minimum:
            self.problem(node.line, f"{what} must be a whole number from {minimum}, got {node.value!r}")
            return None
        return node.value

    def mapping(self, node: Located, what: str, known: set[str] | None = None) -> dict[str, Located] | None:
        if not isinstance(node.value, dict):
            self.problem(node.line, f"{what} must be a mapping (key: value lines)")
            return None
        if known is not None:
            for key in node.value:
                if key not in known:
                    self.problem((node.key_lines or {}).get(key, node.line),
                                 f"unknown key '{key}' in {what}; known: {', '.join(sorted(known))}")
        return node.value

    def sequence(self, node: Located, what: str) -> list[Located] | None:
        if not isinstance(node.value, list):
            self.problem(node.line, f"{what} must be a list (lines starting with '- ')")
            return None
        return node.value

    def scripted_text(self, node: Located, what: str, names: set[str]) -> str | None:
        """A text shown to the operator: placeholders must be well formed and known."""
        text = self.text(node, what)
        if text is None:
            return None
        raw = node.value if isinstance(node.value, str) else text
        for token in tokens(raw):
            line = node.line_of_offset(token.offset)
            if token.kind == "error":
                self.problem(line, f"{what}: {token.value}")
            elif token.kind == "placeholder" and token.value not in names:
                self.problem(line, f"{what}: placeholder {{{token.value}}} has no source: declare it under "
                                   f"'placeholders:' with a source (lead.<field>, lead.extra.<key>, "
                                   f"operator.name) or a value; built in: {', '.join(sorted(BUILTIN_SOURCES))}")
        return text

    # -- the script

    def build(self, root: Located) -> Script | None:
        fields = self.mapping(root, "a script file", KEYS)
        if fields is None:
            return None
        key_lines = root.key_lines or {}
        for key in REQUIRED:
            if key not in fields:
                self.problem(root.line, f"missing '{key}'")
        get: Callable[[str], Located | None] = fields.get

        script_id = self._id(get("id"))
        version = self.integer(get("version"), "version", 1) if get("version") else None
        status = self._status(get("status"))
        language = self._language(get("language"))
        contacts = self._contacts(get("contact"))
        products = self._products(get("products"))
        default = self._flag(get("default"), "default")
        priority = self.integer(get("priority"), "priority", -1000) if get("priority") else 0
        placeholders = self._placeholders(get("placeholders"))
        names = set(BUILTIN_SOURCES) | {p.name for p in placeholders}
        title = self.scripted_text(get("title"), "title", names) if get("title") else None
        goal = self.scripted_text(get("goal"), "goal", names) if get("goal") else None
        stages = self._stages(get("stages"), names) if get("stages") else ()
        faq = self._faq(get("faq"), names)
        notes = self.text(get("notes"), "notes") if get("notes") else None

        if self.problems or None in (script_id, version, language, title, goal, priority):
            return None
        return Script(id=script_id, version=version, status=status, language=language, title=title, goal=goal,
                      contacts=contacts, stages=stages, products=products, default=default, priority=priority,
                      placeholders=placeholders, faq=faq, notes=notes, path=self.path,
                      line=key_lines.get("id", root.line))

    def _id(self, node: Located | None) -> str | None:
        if node is None:
            return None
        text = self.text(node, "id")
        if text is not None and not SCRIPT_ID.fullmatch(text):
            self.problem(node.line, f"id {text!r}: use lower-case latin letters, digits, '.', '_' and '-'")
            return None
        return text

    def _status(self, node: Located | None) -> ScriptStatus:
        if node is None:
            return ScriptStatus.ACTIVE
        try:
            return ScriptStatus(str(node.value).strip().lower())
        except ValueError:
            self.problem(node.line, f"status {node.value!r}: one of {', '.join(s.value for s in ScriptStatus)}")
            return ScriptStatus.DRAFT

    def _language(self, node: Located | None) -> str | None:
        if node is None:
            return None
        text = self.text(node, "language")
        if text is not None and not LANGUAGE.fullmatch(text.lower()):
            self.problem(node.line, f"language {text!r}: a two-letter code such as ru or en")
            return None
        return text.lower() if text else None

    def _flag(self, node: Located | None, what: str) -> bool:
        if node is None:
            return False
        if not isinstance(node.value, bool):
            self.problem(node.line, f"{what} must be true or false")
            return False
        return node.value

    def _contacts(self, node: Located | None) -> tuple[ContactRange, ...]:
        if node is None:
            return ()
        items = node.value if isinstance(node.value, list) else [node]
        ranges = []
        for item in items:
            parsed = self._contact(item)
            if parsed is not None:
                ranges.append(parsed)
        if not ranges and not self.problems:
            self.problem(node.line, "contact: name at least one contact number")
        return tuple(ranges)

    def _contact(self, node: Located) -> ContactRange | None:
        match = CONTACT.match(str(node.value)) if not isinstance(node.value, (bool, list, dict)) else None
        if match:
            first = int(match.group(1))
            last = None if match.group(2) else int(match.group(3) or first)
            if first >= 1 and (last is None or last >= first):
                return ContactRange(first, last)
        self.problem(node.line, f"contact {node.value!r}: a contact number such as 1, 2, '3+' (3rd and later) "
                                f"or '1-2', or a list of them")
        return None

    def _products(self, node: Located | None) -> tuple[str, ...]:
        if node is None:
            return ()
        items = self.sequence(node, "products")
        if items is None:
            return ()
        products = []
        for item in items:
            text = self.text(item, "a product")
            if text is not None:
                products.append(text.casefold())
        return tuple(products)

    def _placeholders(self, node: Located | None) -> tuple[Placeholder, ...]:
        if node is None:
            return ()
        entries = self.mapping(node, "placeholders")
        if entries is None:
            return ()
        found = []
        for name, spec_node in entries.items():
            line = (node.key_lines or {}).get(name, node.line)
            if not PLACEHOLDER_NAME.fullmatch(name):
                self.problem(line, f"placeholder name {name!r}: lower-case letters, digits and _")
                continue
            spec = self.mapping(spec_node, f"placeholder '{name}'", PLACEHOLDER_KEYS)
            if spec is None:
                continue
            source = self.text(spec["source"], f"placeholder '{name}' source") if "source" in spec else None
            value = self.text(spec["value"], f"placeholder '{name}' value") if "value" in spec else None
            fallback = self.text(spec["fallback"], f"placeholder '{name}' fallback") if "fallback" in spec else None
            if source is not None and not is_known_source(source):
                self.problem(spec["source"].line, f"placeholder '{name}': unknown source {source!r}; use one of "
                                                  f"lead.name, lead.product, lead.order_number, lead.comment, "
                                                  f"lead.preferred_time, lead.region, lead.source, "
                                                  f"lead.extra.<key>, operator.name")
            if source is not None and value is not None:
                self.problem(line, f"placeholder '{name}': give a source or a value, not both")
            if source is None and value is None and name not in BUILTIN_SOURCES and "source" not in spec:
                self.problem(line, f"placeholder '{name}' has no source: add 'source: lead.<field>' "
                                   f"(or lead.extra.<key>, operator.name) or a fixed 'value'")
            found.append(Placeholder(name, source, value, fallback))
        return tuple(found)

    def _stages(self, node: Located, names: set[str]) -> tuple[Stage, ...]:
        entries = self.mapping(node, "stages")
        if entries is None:
            return ()
        stages = []
        for name, variants_node in entries.items():
            line = (node.key_lines or {}).get(name, node.line)
            if name not in STAGES:
                self.problem(line, f"unknown stage '{name}'; stages are: {', '.join(STAGES)}")
                continue
            variants = self._variants(variants_node, name, names)
            if variants:
                stages.append(Stage(name, variants))
        if not entries:
            self.problem(node.line, "stages: a script needs at least one stage")
        stages.sort(key=lambda s: STAGES.index(s.name))
        return tuple(stages)

    def _variants(self, node: Located, stage: str, names: set[str]) -> tuple[Variant, ...]:
        items = node.value if isinstance(node.value, list) else [node]
        variants = []
        for number, item in enumerate(items, start=1):
            what = f"stage '{stage}' variant {number}"
            if isinstance(item.value, dict):
                spec = self.mapping(item, what, VARIANT_KEYS) or {}
                if "text" not in spec:
                    self.problem(item.line, f"{what}: missing 'text'")
                    continue
                text = self.scripted_text(spec["text"], what, names)
                label = self.scripted_text(spec["label"], f"{what} label", names) if "label" in spec else None
                line = spec["text"].line
            else:
                text, label, line = self.scripted_text(item, what, names), None, item.line
            if text is not None:
                variants.append(Variant(text, label, line))
        if not items:
            self.problem(node.line, f"stage '{stage}' has no variants")
        return tuple(variants)

    def _faq(self, node: Located | None, names: set[str]) -> tuple[FaqEntry, ...]:
        if node is None:
            return ()
        items = self.sequence(node, "faq")
        if items is None:
            return ()
        entries = []
        for number, item in enumerate(items, start=1):
            what = f"faq entry {number}"
            spec = self.mapping(item, what, FAQ_KEYS)
            if spec is None:
                continue
            for key in ("question", "answer"):
                if key not in spec:
                    self.problem(item.line, f"{what}: missing '{key}'")
            kind = FaqKind.QUESTION
            if "kind" in spec:
                try:
                    kind = FaqKind(str(spec["kind"].value).strip().lower())
                except ValueError:
                    self.problem(spec["kind"].line, f"{what}: kind {spec['kind'].value!r}: question or objection")
            question = self.scripted_text(spec["question"], f"{what} question", names) if "question" in spec else None
            answer = self.scripted_text(spec["answer"], f"{what} answer", names) if "answer" in spec else None
            if question and answer:
                entries.append(FaqEntry(question, answer, kind, item.line))
        return tuple(entries)


def build_script(document: Located, path: str) -> tuple[Script | None, list[Problem]]:
    """One file's script, or None with the problems that keep it from being one."""
    builder = _Builder(path)
    script = builder.build(document)
    return script, builder.problems


def script_from_text(text: str, path: str = "<text>") -> tuple[Script | None, list[Problem]]:
    """For tests and tools: a script from YAML text."""
    from scripts_catalog.loader import YamlProblem, parse_yaml
    try:
        document = parse_yaml(text)
    except YamlProblem as exc:
        return None, [Problem(path, exc.line, exc.message)]
    return build_script(document, path)
