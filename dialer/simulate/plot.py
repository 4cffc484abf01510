"""`dialer simulate --plot FILE.png`: the strategies side by side (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Sequence
from zoneinfo import ZoneInfo

from dialer.simulate.day import DayRecord
from dialer.simulate.kpis import DayKpis
from kernel.errors import UsageError
from leads.lead import LeadStatus


def waiting_curve(record: DayRecord, zone: ZoneInfo, step_minutes: int = 5) -> tuple[list, list[int]]:
    """Callable leads due and not yet first dialed, every `step_minutes` of the day."""
    leads = [lead for lead in record.leads if lead.intake_status == LeadStatus.NEW.value and lead.due_from]
    if not leads:
        return [], []
    start = min(lead.due_from for lead in leads)
    times, counts, moment = [], [], start
    while moment <= record.day_end:
        times.append(moment.astimezone(zone).replace(tzinfo=None))
        counts.append(sum(1 for lead in leads if lead.due_from <= moment
                          and (lead.first_dialed_at is None or lead.first_dialed_at > moment)))
        moment += timedelta(minutes=step_minutes)
    return times, counts


def draw(path: Path, records: Sequence[DayRecord], kpis: Sequence[DayKpis], zone: ZoneInfo) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: give a .png or .svg file name")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, (waiting, bars) = plt.subplots(1, 2, figsize=(13, 4.8))
    for record in records:
        times, counts = waiting_curve(record, zone)
        waiting.plot(times, counts, label=record.strategy)
    waiting.set_title("leads due, not yet first dialed")
    waiting.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    waiting.legend()
    names = [k.strategy for k in kpis]
    figures = [("by deadline %", [k.first_call_met_pct or 0 for k in kpis]),
               ("contact rate %", [k.contact_rate_pct or 0 for k in kpis]),
               ("talk min / op-hour", [k.talk_min_per_operator_hour or 0 for k in kpis]),
               ("abandoned %", [k.abandoned_pct or 0 for k in kpis])]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        bars.bar([j + i * width for j in range(len(figures))], [values[i] for _, values in figures], width,
                 label=name)
    bars.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(figures))], [f for f, _ in figures])
    bars.set_title("KPIs")
    bars.legend()
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(figure)
