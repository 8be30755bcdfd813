"""HTML reports of runs (``genlab report``): one self-contained file, a comparison when there are several.

* :mod:`genlab.report.collect` reads a run directory (and says what is missing);
* :mod:`genlab.report.compare` ranks metrics and builds the comparison table;
* :mod:`genlab.report.charts` embeds pictures and draws loss curves;
* :mod:`genlab.report.build` renders ``templates/report.html.j2`` (Jinja2, autoescaped) and writes the file.
"""

from genlab.report.build import render_report, write_report
from genlab.report.collect import RunData, collect_run

__all__ = ["RunData", "collect_run", "render_report", "write_report"]
