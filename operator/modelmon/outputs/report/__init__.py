"""The HTML report of a check: summary, drift table, a plot of every column, performance,
confidence, data quality and, given a history, trends. Part of ``outputs``.

``render_report`` takes what checks computed (``MonitorReport``: spec, status and the
columns' shapes from ``check.run_check_with_shapes``; optionally ``HistoryPoint``s of past
checks) and returns one self-contained HTML document: styles, data and the plotting script
(Vega-Lite, from the vl-convert-python package: ``bundle``) are inlined, so the file opens
offline. ``modelmon report`` writes it to a file; ``charts`` builds the Vega-Lite
specifications and ``page`` the HTML.
"""

from __future__ import annotations

from modelmon.outputs.report.inputs import HistoryPoint, MonitorReport
from modelmon.outputs.report.page import drift_rows, render_report

__all__ = ["HistoryPoint", "MonitorReport", "drift_rows", "render_report"]
