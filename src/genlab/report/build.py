"""``genlab report RUN_DIR [RUN_DIR ...] -o report.html``: one self-contained HTML file.

For each run: its config, networks and parameter counts, the metrics of ``eval.json`` with their
protocol, loss curves, preview grids over the epochs (first, middle, last of each preview name), the
family's analysis figures (``figures/*.png``), the runs it copied weights from, and what is missing.
With several runs, first a comparison: a table with a row per run and a column per config key that
differs and per metric (the best value of each ranked metric marked; :mod:`genlab.report.compare`),
and the loss curves the runs share, overlaid.

The HTML is rendered by Jinja2 with autoescaping on (``templates/report.html.j2``), so run names,
config values and file names are text, never markup; pictures are ``data:`` URIs and the style sheet
is inline, so the file loads nothing from anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from genlab import __version__
from genlab.core.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.report.charts import loss_curves_uri, overlaid_uris, png_data_uri
from genlab.report.collect import RunData, collect_run
from genlab.report.compare import compare, format_value, metric_direction, unique_labels

TEMPLATE = "report.html.j2"
ARROWS = {"lower": "↓ lower is better", "higher": "↑ higher is better", None: ""}


def _environment() -> jinja2.Environment:
    # autoescape=True for every template (the name ends in .j2, which select_autoescape would not match)
    return jinja2.Environment(loader=jinja2.PackageLoader("genlab.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _status(run: RunData) -> str:
    if run.loop is None:
        return "no checkpoint"
    epochs = (run.config or {}).get("train", {}).get("epochs")
    return f"epoch {run.loop.get('epoch', 0)} of {epochs}, step {run.loop.get('step', 0)}"


def _run_context(run: RunData, label: str, index: int) -> dict[str, Any]:
    evaluation = run.evaluation or {}
    counts = run.parameters or {}
    return {
        "label": label, "anchor": f"run-{index}", "path": str(run.path), "family": run.family or "unknown",
        "summary": run.summary, "status": _status(run), "missing": run.missing, "config_text": run.config_text,
        "parameters": [(name, f"{count:,}") for name, count in counts.items()],
        "total_parameters": f"{sum(counts.values()):,}" if counts else None,
        "metrics": [(name, format_value(value), ARROWS[metric_direction(name)]) for name, value in run.metrics.items()
                    if not isinstance(value, dict)],
        "metric_records": [(name, json.dumps(value, indent=2, default=str)) for name, value in run.metrics.items()
                           if isinstance(value, dict)],
        "protocol": None if run.protocol is None else json.dumps(run.protocol, indent=2, default=str),
        "evaluated": {k: format_value(evaluation.get(k)) for k in ("epoch", "step", "checkpoint", "seconds")}
        if run.evaluation is not None else None,
        "eval_config": json.dumps(evaluation.get("eval_config"), default=str) if evaluation.get("eval_config") else None,
        "loss_curves": loss_curves_uri(run, label),
        "previews": [{"name": name, "grids": [(epoch, png.name, png_data_uri(png)) for epoch, png in items]}
                     for name, items in run.previews.items()],
        "figures": [(png.name, png_data_uri(png)) for png in run.figures],
        "sources": None if run.sources is None else json.dumps(run.sources, indent=2, default=str),
        "epochs_logged": len(run.history),
    }


def render_report(run_dirs: Sequence[str | Path], title: str | None = None) -> str:
    """The report of ``run_dirs`` as an HTML string (see the module docstring).

    Raises:
        GenlabError: no run directory was given, or one is not a run directory.
    """
    if not run_dirs:
        raise GenlabError("genlab report needs at least one run directory")
    runs = [collect_run(path) for path in run_dirs]
    labels = unique_labels([run.path for run in runs])
    comparison = compare(runs, labels) if len(runs) > 1 else None
    overlays = overlaid_uris(runs, labels, comparison.shared_losses) if comparison else []
    context = {
        "title": title or ("genlab report: " + (labels[0] if len(runs) == 1 else f"{len(runs)} runs")),
        "version": __version__,
        "runs": [_run_context(run, label, i) for i, (run, label) in enumerate(zip(runs, labels), start=1)],
        "comparison": comparison, "arrows": ARROWS, "overlays": overlays,
    }
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(run_dirs: Sequence[str | Path], output: str | Path, title: str | None = None) -> Path:
    """Render the report of ``run_dirs`` and write it atomically to ``output``; returns the path."""
    html = render_report(run_dirs, title)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, html)
    return output
