"""Coaching packs for trainers and KPI reports for managers, read from the inspection store.

>>> from pipeline.reports import CoachFilter, export_coaching_pack, build_report, write_report
"""

from pipeline.reports.coaching import (
    CoachFilter,
    CoachingEntry,
    CoachingManifest,
    export_coaching_pack,
)
from pipeline.reports.data import Period, Report, ReportError
from pipeline.reports.kpi import build_report, write_report

__all__ = [
    "CoachFilter",
    "CoachingEntry",
    "CoachingManifest",
    "Period",
    "Report",
    "ReportError",
    "build_report",
    "export_coaching_pack",
    "write_report",
]
