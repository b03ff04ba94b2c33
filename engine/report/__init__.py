"""The report: data -> charts -> one self-contained HTML file. It reads what the stages
computed (``ReportData``) and never computes an analytic figure itself."""

from engine.report.data import ReportData
from engine.report.page import build_report, write_report

__all__ = ["ReportData", "build_report", "write_report"]
