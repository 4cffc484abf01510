"""What can go wrong with the scripts catalog, in the dialer's own error family."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.errors import DialerError, NotFound


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a catalog file, with the line it is on (0: the file or the catalog as a whole)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class CatalogInvalid(DialerError):
    """The scripts catalog has errors."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the scripts catalog has {len(self.problems)} error(s):\n{lines}")


class UnknownScript(NotFound):
    """No such script in the catalog."""


class NoScript(DialerError):
    """No script fits this lead, and the catalog has no default script."""
