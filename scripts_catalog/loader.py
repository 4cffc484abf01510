"""Read catalog files: YAML into values that remember the line they came from.

`yaml.compose` gives nodes with start marks; we turn them into `Located` values (plain Python
values plus their line) so that every later error can point at the line of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from scripts_catalog.errors import Problem

PACKAGED_CATALOG = Path(__file__).resolve().parent / "catalog"
# libyaml's parser when PyYAML has it (about ten times faster), else the pure-Python one: same nodes and marks.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Located:
    """A YAML value and the 1-based line it starts on.

    `value` is a str, int, float, bool or None for a scalar, a list of Located for a sequence, and a
    dict of key -> Located for a mapping (the key's own line is `key_lines[key]`).
    """

    value: Any
    line: int
    style: str | None = None                 # '|' literal, '>' folded, quotes, None plain
    key_lines: dict[str, int] | None = None

    def line_of_offset(self, offset: int) -> int:
        """The line of a character of a scalar; exact for literal blocks (|), else the start line."""
        if self.style == "|" and isinstance(self.value, str):
            return self.line + 1 + self.value.count("\n", 0, offset)
        return self.line


class YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def catalog_directory(setting: str) -> Path:
    """The catalog folder from settings (scripts.directory); empty means the sample catalog shipped with us."""
    return Path(setting).expanduser() if setting else PACKAGED_CATALOG


def catalog_files(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml file under the folder, in a stable order."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_document(path: Path) -> Located:
    """One catalog file as a Located tree. Raises YamlProblem with the line of the first error."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text (save the file as UTF-8)") from None
    return parse_yaml(text)


def parse_yaml(text: str) -> Located:
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlProblem(1, "the file is empty")
        return _located(loader, node)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(*_yaml_error(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"broken YAML: {exc}") from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """The line to show and the sentence: where the broken construct starts when the file just ends
    inside it (an unclosed quote or bracket), else where the parser stumbled."""
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
    at_end = "end of stream" in (exc.problem or "")
    line = (context_line if at_end and context_line else problem_line) or context_line or 1
    parts = []
    if exc.context:
        parts.append(f"{exc.context} (line {context_line})" if context_line and context_line != line
                     else exc.context)
    if exc.problem:
        problem = exc.problem.replace("end of stream", "the end of the file")
        parts.append(f"{problem} (line {problem_line})" if problem_line and problem_line != line else problem)
    return line, "broken YAML: " + ", ".join(parts)


def _located(loader: yaml.SafeLoader, node: yaml.Node) -> Located:  # (or a CSafeLoader)
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)          # resolve << merge keys
        values: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise YamlProblem(key_line, f"a key must be a word, not {key!r}")
            key = str(key)
            if key in values:
                raise YamlProblem(key_line, f"duplicate key '{key}' (first on line {key_lines[key]})")
            values[key] = _located(loader, value_node)
            key_lines[key] = key_line
        return Located(values, line, None, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Located([_located(loader, item) for item in node.value], line)
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        value = str(value)                     # dates and the like: keep their text
    return Located(value, line, node.style)


def iter_documents(directory: Path) -> Iterator[tuple[Path, Located | Problem]]:
    """Each catalog file with its tree, or the problem that kept it from being read."""
    for path in catalog_files(directory):
        try:
            yield path, read_document(path)
        except YamlProblem as exc:
            yield path, Problem(str(path), exc.line, exc.message)
        except OSError as exc:
            yield path, Problem(str(path), 0, f"cannot be read: {exc.strerror}")
