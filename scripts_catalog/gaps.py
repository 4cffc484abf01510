"""Questions the script did not cover: operators flag them during a call, team leads read the report.

The report groups flags by script and by question (the same words, ignoring case, ё/е, spacing,
punctuation and quotes), most frequent first, so the next script version can answer them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import select

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead, Operator, ScriptGap
from kernel.errors import NotFound, UsageError

MAX_QUESTION_CHARS = 2000


def normalize_question(text: str) -> str:
    """The grouping key of a question: its words only, casefolded, ё as е (no punctuation, quotes, spacing)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold().replace("ё", "е")).split())


def flag_gap(db: Database, script_id: str, version: int, question: str, lead_id: int | None,
             attempt_id: int | None, operator_id: int | None, now: datetime) -> int:
    """Record that a customer asked something script `script_id` v`version` does not cover. Returns the flag's id."""
    text = (question or "").strip()
    if not text:
        raise UsageError("the question is empty: write what the customer asked")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question is {len(text)} characters long; at most {MAX_QUESTION_CHARS}")
    if not (script_id or "").strip():
        raise UsageError("a script id is needed")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"script version must be a whole number from 1, got {version!r}")
    try:
        require_aware(now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with db.write() as session:
        if lead_id is not None and session.get(Lead, lead_id) is None:
            raise NotFound(f"no lead with id {lead_id}")
        if operator_id is not None and session.get(Operator, operator_id) is None:
            raise NotFound(f"no operator with id {operator_id}")
        if attempt_id is not None:
            attempt = session.get(CallAttempt, attempt_id)
            if attempt is None:
                raise NotFound(f"no call attempt with id {attempt_id}")
            if lead_id is not None and attempt.lead_id != lead_id:
                raise UsageError(f"attempt {attempt_id} belongs to lead {attempt.lead_id}, not to lead {lead_id}")
            lead_id = attempt.lead_id
        gap = ScriptGap(script_id=script_id.strip(), script_version=version, question=text, lead_id=lead_id,
                        attempt_id=attempt_id, operator_id=operator_id, created_at=now)
        session.add(gap)
        session.flush()
        return gap.id


@dataclass(frozen=True)
class GapFlag:
    script_id: str
    version: int
    question: str
    lead_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class GapLine:
    script_id: str
    question: str                  # the wording operators used most often
    count: int
    versions: tuple[int, ...]
    leads: int                     # different leads who asked it
    first_flagged: datetime
    last_flagged: datetime

    def as_dict(self) -> dict:
        return {"script_id": self.script_id, "question": self.question, "count": self.count,
                "versions": ", ".join(str(v) for v in self.versions), "leads": self.leads,
                "first_flagged": self.first_flagged, "last_flagged": self.last_flagged}


def summarize_gaps(flags: Iterable[GapFlag]) -> list[GapLine]:
    """Group flags by script and question; per script the most frequent question first."""
    groups: dict[tuple[str, str], list[GapFlag]] = {}
    for flag in sorted(flags, key=lambda f: f.created_at):
        groups.setdefault((flag.script_id, normalize_question(flag.question)), []).append(flag)
    lines = []
    for (script_id, _key), members in groups.items():
        wordings = Counter(" ".join(m.question.split()) for m in members)
        top = max(wordings.values())
        wording = next(w for w in (" ".join(m.question.split()) for m in members) if wordings[w] == top)
        lines.append(GapLine(script_id, wording, len(members), tuple(sorted({m.version for m in members})),
                             len({m.lead_id for m in members if m.lead_id is not None}),
                             members[0].created_at, members[-1].created_at))
    lines.sort(key=lambda g: (g.script_id, -g.count, -g.last_flagged.timestamp(), g.question))
    return lines


def gap_report(db: Database, script_id: str | None = None, since: datetime | None = None) -> list[GapLine]:
    """The flags as a report: by script, then by how often the question came up."""
    query = select(ScriptGap.script_id, ScriptGap.script_version, ScriptGap.question, ScriptGap.lead_id,
                   ScriptGap.created_at).order_by(ScriptGap.id)
    if script_id:
        query = query.where(ScriptGap.script_id == script_id)
    if since is not None:
        query = query.where(ScriptGap.created_at >= require_aware(since))
    with db.read() as session:
        rows = session.execute(query).all()
    return summarize_gaps(GapFlag(r.script_id, r.script_version, r.question, r.lead_id, r.created_at) for r in rows)
