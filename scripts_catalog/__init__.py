"""The call scripts catalog (DESIGN §6): script files, their validation, selection per lead, rendering,
and the operators' "the script did not cover this" flags.

    catalog = load_catalog(catalog_directory(settings.scripts.directory))
    choice = select_for_lead(catalog, load_lead_facts(db, lead_id), settings.scripts.language)
    page = render(choice.script, facts)
"""

from __future__ import annotations

from pathlib import Path

from scripts_catalog.errors import CatalogInvalid, NoScript, Problem, UnknownScript
from scripts_catalog.facts import LeadFacts, load_lead_facts
from scripts_catalog.gaps import GapLine, flag_gap, gap_report, normalize_question
from scripts_catalog.loader import PACKAGED_CATALOG, catalog_directory
from scripts_catalog.model import STAGES, Catalog, ContactRange, FaqKind, Script, ScriptStatus
from scripts_catalog.render import RenderedScript, render
from scripts_catalog.select import Choice, select_for_lead, select_script
from scripts_catalog.validate import ValidationReport, validate_directory


def load_catalog(directory: str | Path = PACKAGED_CATALOG) -> Catalog:
    """Every script in the folder. Raises CatalogInvalid (listing file:line problems) if any file is wrong."""
    report = validate_directory(Path(directory))
    if not report.ok:
        raise CatalogInvalid(list(report.problems))
    return report.catalog


__all__ = [
    "STAGES", "Catalog", "CatalogInvalid", "Choice", "ContactRange", "FaqKind", "GapLine", "LeadFacts",
    "NoScript", "PACKAGED_CATALOG", "Problem", "RenderedScript", "Script", "ScriptStatus", "UnknownScript",
    "ValidationReport", "catalog_directory", "flag_gap", "gap_report", "load_catalog", "load_lead_facts",
    "normalize_question", "render", "select_for_lead", "select_script", "validate_directory",
]
