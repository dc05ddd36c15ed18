"""The HTML report over a kernel-search database (plotly), written to a file or served locally.

Everything shown is read through storage.queries; see dashboards.data (what), dashboards.figures
(the plots), dashboards.page (the page) and dashboards.server (`kernel-search dashboard`).
"""

from dashboards.data import ReportData, collect, to_json
from dashboards.page import build_report, render
from dashboards.server import make_server

__all__ = ["ReportData", "build_report", "collect", "make_server", "render", "to_json"]
