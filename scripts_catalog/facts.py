"""What a script may know about the lead being called: a frozen snapshot, read at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from kernel.db.engine import Database
from kernel.errors import NotFound
from scripts_catalog.model import EXTRA_PREFIX


@dataclass(frozen=True)
class LeadFacts:
    lead_id: int | None = None
    name: str | None = None
    product: str | None = None
    order_number: str | None = None
    comment: str | None = None
    preferred_time: str | None = None
    region: str | None = None
    source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    contacts_count: int = 0             # conversations already held with this customer
    operator_name: str | None = None

    @property
    def contact_number(self) -> int:
        """Which contact the next conversation is: 1 for a lead never reached, and so on."""
        return self.contacts_count + 1

    @property
    def language(self) -> str | None:
        """A language the lead asked for (extra field `language`, e.g. "en"), if any."""
        value = self.extra.get("language") if isinstance(self.extra, Mapping) else None
        return value.strip().lower() if isinstance(value, str) and value.strip() else None

    def value(self, source: str) -> Any:
        """The raw value behind a placeholder source (lead.name, lead.extra.amount, operator.name)."""
        if source == "operator.name":
            return self.operator_name
        if source.startswith(EXTRA_PREFIX):
            return self.extra.get(source[len(EXTRA_PREFIX):]) if isinstance(self.extra, Mapping) else None
        if source.startswith("lead."):
            return getattr(self, source[len("lead."):], None)
        return None

    def with_operator(self, operator_name: str | None) -> "LeadFacts":
        return replace(self, operator_name=operator_name)


def load_lead_facts(db: Database, lead_id: int, operator_name: str | None = None) -> LeadFacts:
    """The lead as a script sees it. Raises NotFound for an unknown id."""
    from kernel.db.models import Lead

    with db.read() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {lead_id}")
        return LeadFacts(lead_id=lead.id, name=lead.name, product=lead.product, order_number=lead.order_number,
                         comment=lead.comment, preferred_time=lead.preferred_time, region=lead.region,
                         source=lead.source, extra=dict(lead.extra or {}), contacts_count=lead.contacts_count or 0,
                         operator_name=operator_name)
