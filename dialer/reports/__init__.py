"""Reports and KPIs (issue 13): what a store owner and a team lead read every morning.

kpi.py holds the definitions (pure), queries.py computes them in the database, render.py and cli.py
turn them into tables, files and charts.
"""

from dialer.reports.kpi import DIMENSIONS, GLOSSARY, KpiRow, Period, ResultRow, parse_by
from dialer.reports.queries import compute_results, compute_summary

__all__ = ["DIMENSIONS", "GLOSSARY", "KpiRow", "Period", "ResultRow", "compute_results", "compute_summary",
           "parse_by"]
