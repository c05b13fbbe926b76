"""Render a build report as a static HTML page with two PNG charts.

The page comes from the Jinja2 template ``templates/report.html.j2`` with autoescaping on,
so every string from the report (model, layer and stage names, details, notes) is escaped.
The report arrives validated (``report_schema.Report``); a build that stopped early lacks
whole sections, and the page says "not available" for those. The page has no JavaScript.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
# Figure objects render through the Agg canvas on savefig without touching
# pyplot, so no global backend switch (which would close a notebook user's
# open figures) and no figure registry that leaks memory across builds.
from matplotlib.figure import Figure

from bnn2fpga.flows.report_schema import LayerRow, Report

__all__ = ["render_html", "HTML_NAME", "CYCLES_PNG", "RESOURCES_PNG", "TEMPLATE"]

HTML_NAME = "report.html"
CYCLES_PNG = "cycles_per_layer.png"
RESOURCES_PNG = "resources.png"
TEMPLATE = "report.html.j2"

NA = "not available"
DEFAULT_CEILING = 0.85

# status word -> CSS class; anything unknown is shown neutral.
_STATUS_CLASS = {
    "bit-exact": "ok", "done": "ok", "pass": "ok", "passed": "ok",
    "mismatch": "bad", "failed": "bad", "error": "bad",
    "reference": "ref",
    "not run": "muted", "skipped": "muted",
}

_COLOR_BAR = "#4c78a8"
_COLOR_HOT = "#e45756"
_COLOR_WARN = "#f2a541"

# Yosys synthesis counts (flows/synth), when run, sit beside FINN's estimates.
_LAYER_COLUMNS = ("PE", "SIMD", "cycles", "LUT", "BRAM_18K", "URAM", "DSP")
_YOSYS_COLUMNS = ("yosys_LUT", "yosys_FF", "yosys_BRAM_18K", "yosys_DSP")


# --------------------------------------------------------------------------
# template filters

def _finite(value) -> float | None:
    """A finite number, or None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _num(value, digits: int = 0, missing: str = "—") -> str:
    """Display text for a number: thousands separators, '—' (or ``missing``) when absent."""
    num = _finite(value)
    if num is None:
        return missing
    if digits == 0 and num != round(num):
        digits = 1  # don't hide fractional estimates such as 12.5 LUT
    return f"{num:,.{digits}f}"


def _seconds(value) -> str:
    """Display text for a duration: seconds, minutes or hours as fits."""
    sec = _finite(value)
    if sec is None:
        return "—"
    if sec < 60:
        return f"{sec:.1f} s"
    minutes, sec = divmod(round(sec), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _status_class(status) -> str:
    """CSS class of a status word."""
    if not status:
        return "muted"
    return _STATUS_CLASS.get(str(status).strip().lower(), "neutral")


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=StrictUndefined,  # a misspelt field fails the render instead of showing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(num=_num, seconds=_seconds, status_class=_status_class)
_ENV.globals["NA"] = NA


# --------------------------------------------------------------------------
# derived views of the report

@dataclass(frozen=True)
class _ResourceRow:
    label: str
    used: float | None
    avail: float | None
    pct: float | None  # inf: used on a board that has none
    state: str  # unknown | absent | impossible | over | above | fits


def _ceiling(report: Report) -> float:
    ceil = _finite(report.folding.ceiling) if report.folding else None
    return ceil if ceil is not None and ceil > 0 else DEFAULT_CEILING


def _bottleneck(report: Report) -> str | None:
    """Name of the slowest layer: as reported, else the max-cycles layer."""
    if report.performance and report.performance.bottleneck:
        return report.performance.bottleneck
    timed = [layer for layer in report.layers or [] if _finite(layer.cycles) is not None]
    return max(timed, key=lambda layer: layer.cycles).name if timed else None


def _resource_rows(report: Report, ceiling: float) -> list[_ResourceRow]:
    """Used vs. available per resource; BRAM compared in 18 Kb halves."""
    totals = report.totals
    res = report.board.resources if report.board else None
    bram36 = _finite(res.BRAM36) if res else None
    specs = [
        ("LUT", totals and totals.LUT, res and res.LUT),
        ("BRAM (18 Kb halves)", totals and totals.BRAM_18K, None if bram36 is None else 2 * bram36),
        ("URAM", totals and totals.URAM, res and res.URAM),
        ("DSP", totals and totals.DSP, res and res.DSP),
    ]
    rows = []
    for label, used, avail in specs:
        used, avail = _finite(used), _finite(avail)
        if used is None or avail is None:
            pct, state = None, "unknown"
        elif avail == 0:
            # The board has none of this resource: fine if unused, else impossible.
            pct, state = (0.0, "absent") if used == 0 else (math.inf, "impossible")
        else:
            pct = 100.0 * used / avail
            state = "over" if pct > 100 else "above" if pct > 100 * ceiling else "fits"
        rows.append(_ResourceRow(label, used, avail, pct, state))
    return rows


def _first_mismatch(report: Report):
    ver = report.verification
    return next((s for s in ver.stages if s.status.lower() == "mismatch"), None) if ver else None


def _chart_label(text: str, limit: int = 40) -> str:
    # Matplotlib treats $...$ as math; layer names are plain text.
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------
# charts

def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")


def _plot_resources(rows: list[_ResourceRow], ceiling: float, path: Path) -> bool:
    """Horizontal percent-used bars; returns False when there is nothing to plot."""
    rows = [r for r in rows if r.state not in ("unknown", "absent")]
    if not rows:
        return False
    finite = [r.pct for r in rows if math.isfinite(r.pct)]
    xmax = max([110.0, 100.0 * ceiling + 10] + [p * 1.15 for p in finite])

    fig = Figure(figsize=(7.0, 0.55 * len(rows) + 1.3))
    ax = fig.add_subplot()
    widths = [r.pct if math.isfinite(r.pct) else xmax for r in rows]
    colors = [_COLOR_HOT if r.pct > 100 else _COLOR_WARN if r.pct > 100 * ceiling else _COLOR_BAR
              for r in rows]
    notes = [f"{r.pct:.1f}%" if math.isfinite(r.pct) else "none on board" for r in rows]
    ypos = list(range(len(rows)))
    ax.barh(ypos, widths, color=colors, height=0.6)
    ax.set_yticks(ypos, [r.label for r in rows])
    ax.invert_yaxis()  # keep table order, top to bottom
    ax.axvline(100 * ceiling, color="#333333", linestyle="--", linewidth=1.2,
               label=f"ceiling {100 * ceiling:.0f}%")
    ax.axvline(100, color=_COLOR_HOT, linestyle=":", linewidth=1.0, label="100%")
    for y, w, note in zip(ypos, widths, notes):
        inside = w > 0.8 * xmax
        ax.text(w - 1 if inside else w + 1, y, note, va="center",
                ha="right" if inside else "left", fontsize=9,
                color="white" if inside else "#222222")
    ax.set_xlim(0, xmax)
    ax.set_xlabel("% of board used (estimate)")
    # Above the axes so the legend never covers a bar.
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)
    return True


def _plot_cycles(layers: list[LayerRow], bottleneck: str | None, path: Path) -> bool:
    """Per-layer cycle bars in dataflow order; returns False when nothing to plot."""
    points = [(layer.name, _finite(layer.cycles)) for layer in layers]
    points = [(n, c) for n, c in points if c is not None and c >= 0]
    if not points:
        return False
    positive = [c for _, c in points if c > 0]
    # Log scale once the spread exceeds two decades, or small layers vanish.
    log = bool(positive) and max(positive) / min(positive) > 100
    if log:
        points = [(n, c) for n, c in points if c > 0]

    fig = Figure(figsize=(7.5, 0.28 * len(points) + 1.4))
    ax = fig.add_subplot()
    ypos = list(range(len(points)))
    colors = [_COLOR_HOT if n == bottleneck else _COLOR_BAR for n, _ in points]
    ax.barh(ypos, [c for _, c in points], color=colors, height=0.7)
    ax.set_yticks(ypos, [_chart_label(n) for n, _ in points], fontsize=8)
    for tick, (name, _) in zip(ax.get_yticklabels(), points):
        if name == bottleneck:
            tick.set_color(_COLOR_HOT)
            tick.set_fontweight("bold")
    ax.invert_yaxis()  # first layer of the dataflow on top
    top = max(c for _, c in points) or 1.0
    if log:
        ax.set_xscale("log")
        ax.set_xlim(right=top * 6)  # room for the count labels
    else:
        ax.set_xlim(0, top * 1.18)
    for y, (_, c) in zip(ypos, points):
        ax.text(c * 1.08 if log else c + top * 0.01, y, f"{c:,.0f}", va="center", fontsize=7,
                color="#444444")
    ax.set_xlabel("cycles per frame" + (" (log scale)" if log else ""))
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, path)
    return True


# --------------------------------------------------------------------------

def render_html(report: Report | dict, out_dir: Path) -> Path:
    """Write ``report.html`` and its PNG charts into ``out_dir``; return the HTML path.

    A dict is validated as a ``Report`` first. A chart without data is not drawn (and a
    stale one from an earlier run is removed) so the page never shows numbers from
    another build.
    """
    if not isinstance(report, Report):
        report = Report.model_validate(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    layers = report.layers or []
    bottleneck = _bottleneck(report)
    ceiling = _ceiling(report)
    resources = _resource_rows(report, ceiling)

    res_png, cyc_png = out_dir / RESOURCES_PNG, out_dir / CYCLES_PNG
    for png in (res_png, cyc_png):
        png.unlink(missing_ok=True)
    have_res = _plot_resources(resources, ceiling, res_png)
    have_cyc = _plot_cycles(layers, bottleneck, cyc_png)

    step_times = [t for t in (_finite(s.seconds) for s in report.steps or []) if t is not None]
    res = report.board.resources if report.board else None
    page = _ENV.get_template(TEMPLATE).render(
        report=report,
        bottleneck=bottleneck,
        ceiling=ceiling,
        resources=resources,
        bram36=_finite(res.BRAM36) if res else None,
        resources_png=RESOURCES_PNG if have_res else None,
        layers=layers,
        layer_columns=_LAYER_COLUMNS + tuple(
            c for c in _YOSYS_COLUMNS if any(getattr(layer, c) is not None for layer in layers)),
        cycles_png=CYCLES_PNG if have_cyc else None,
        first_mismatch=_first_mismatch(report),
        steps_seconds=sum(step_times) if step_times else None,
        notes=[n for n in report.notes or [] if n.strip()],
    )
    out = out_dir / HTML_NAME
    out.write_text(page, encoding="utf-8")
    return out
