"""Render a build report dict as a static HTML page with two PNG charts.

The report may come from a build that stopped early, so every key is
optional: whatever is missing is shown as "not available" instead of
failing. All text from the report is escaped; the page has no JavaScript.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

# Figure objects render through the Agg canvas on savefig without touching
# pyplot, so no global backend switch (which would close a notebook user's
# open figures) and no figure registry that leaks memory across builds.
from matplotlib.figure import Figure

__all__ = ["render_html", "HTML_NAME", "CYCLES_PNG", "RESOURCES_PNG"]

HTML_NAME = "report.html"
CYCLES_PNG = "cycles_per_layer.png"
RESOURCES_PNG = "resources.png"

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
_COLOR_MUTED = "#9aa5b1"


# --------------------------------------------------------------------------
# small, forgiving accessors and formatters

def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _number(value) -> float | None:
    """A finite number, or None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 0, unit: str = "", missing: str = "—") -> str:
    """Escaped display text: thousands separators for numbers, text as-is."""
    if value is None or value == "":
        return missing
    num = _number(value)
    if num is None:
        return _esc(value)
    if digits == 0 and num != round(num):
        digits = 1  # don't hide fractional estimates such as 12.5 LUT
    text = f"{num:,.{digits}f}"
    return text + (f" {unit}" if unit else "")


def _fmt_seconds(value) -> str:
    sec = _number(value)
    if sec is None:
        return "—"
    if sec < 60:
        return f"{sec:.1f} s"
    minutes, sec = divmod(round(sec), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _badge(status) -> str:
    if status is None or status == "":
        return f'<span class="badge muted">{NA}</span>'
    cls = _STATUS_CLASS.get(str(status).strip().lower(), "neutral")
    return f'<span class="badge {cls}">{_esc(status)}</span>'


def _na(what: str = "") -> str:
    suffix = f": {_esc(what)}" if what else ""
    return f'<p class="na">{NA}{suffix}</p>'


def _chart_label(text: str, limit: int = 40) -> str:
    # Matplotlib treats $...$ as math; layer names are plain text.
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------
# derived views of the report

def _ceiling(report: dict) -> float:
    ceil = _number(_dict(report.get("folding")).get("ceiling"))
    return ceil if ceil is not None and ceil > 0 else DEFAULT_CEILING


def _layers(report: dict) -> list[dict]:
    return [layer for layer in _list(report.get("layers")) if isinstance(layer, dict)]


def _bottleneck(report: dict, layers: list[dict]) -> str | None:
    """Name of the slowest layer: as reported, else the max-cycles layer."""
    name = _dict(report.get("performance")).get("bottleneck")
    if name:
        return str(name)
    timed = [(_number(layer.get("cycles")), layer) for layer in layers]
    timed = [(c, layer) for c, layer in timed if c is not None and layer.get("name") is not None]
    return str(max(timed, key=lambda t: t[0])[1]["name"]) if timed else None


def _resource_rows(report: dict) -> list[dict]:
    """Used vs. available per resource; BRAM compared in 18 Kb halves."""
    totals = _dict(report.get("totals"))
    board_res = _dict(_dict(report.get("board")).get("resources"))
    bram36 = _number(board_res.get("BRAM36"))
    specs = [
        ("LUT", "LUT", totals.get("LUT"), board_res.get("LUT")),
        ("BRAM", "BRAM (18 Kb halves)", totals.get("BRAM_18K"),
         None if bram36 is None else 2 * bram36),
        ("URAM", "URAM", totals.get("URAM"), board_res.get("URAM")),
        ("DSP", "DSP", totals.get("DSP"), board_res.get("DSP")),
    ]
    rows = []
    for key, label, used, avail in specs:
        used, avail = _number(used), _number(avail)
        if used is None or avail is None:
            pct = None
        elif avail > 0:
            pct = 100.0 * used / avail
        else:
            # The board has none of this resource: fine if unused, else impossible.
            pct = 0.0 if used == 0 else math.inf
        rows.append({"key": key, "label": label, "used": used, "avail": avail, "pct": pct})
    return rows


# --------------------------------------------------------------------------
# charts

def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")


def _plot_resources(rows: list[dict], ceiling: float, path: Path) -> bool:
    """Horizontal percent-used bars; returns False when there is nothing to plot."""
    rows = [r for r in rows if r["pct"] is not None and not (r["avail"] == 0 and r["used"] == 0)]
    if not rows:
        return False
    finite = [r["pct"] for r in rows if math.isfinite(r["pct"])]
    xmax = max([110.0, 100.0 * ceiling + 10] + [p * 1.15 for p in finite])

    fig = Figure(figsize=(7.0, 0.55 * len(rows) + 1.3))
    ax = fig.add_subplot()
    labels, widths, colors, notes = [], [], [], []
    for r in rows:
        pct = r["pct"]
        labels.append(r["label"])
        widths.append(pct if math.isfinite(pct) else xmax)
        if pct > 100:
            colors.append(_COLOR_HOT)
        elif pct > 100 * ceiling:
            colors.append(_COLOR_WARN)
        else:
            colors.append(_COLOR_BAR)
        notes.append(f"{pct:.1f}%" if math.isfinite(pct) else "none on board")
    ypos = list(range(len(rows)))
    ax.barh(ypos, widths, color=colors, height=0.6)
    ax.set_yticks(ypos, labels)
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


def _plot_cycles(layers: list[dict], bottleneck: str | None, path: Path) -> bool:
    """Per-layer cycle bars in dataflow order; returns False when nothing to plot."""
    points = [(str(layer.get("name", f"layer {i}")), _number(layer.get("cycles")))
              for i, layer in enumerate(layers)]
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
# HTML sections

_CSS = """
:root { --ok:#1e8e3e; --bad:#d93025; --warn:#e37400; --muted:#80868b; --ref:#1a73e8;
        --line:#e3e6ea; --bg:#f6f7f9; --text:#202124; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text);
       font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
main { max-width:1100px; margin:0 auto; padding:24px 20px 48px; }
header h1 { margin:0 0 4px; font-size:26px; }
header .meta { color:#5f6368; }
header .meta b { color:var(--text); font-weight:600; }
section { background:#fff; border:1px solid var(--line); border-radius:10px;
          padding:18px 20px; margin-top:18px; }
h2 { margin:0 0 12px; font-size:18px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(200px,1fr)); gap:12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:#5f6368; font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:22px; font-weight:600; word-break:break-word; }
.card .sub { color:#5f6368; font-size:13px; word-break:break-word; }
.card.ok { border-left:5px solid var(--ok); } .card.bad { border-left:5px solid var(--bad); }
.card.muted, .card.neutral { border-left:5px solid var(--muted); }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#fafbfc; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fbfbfc; }
tr.bottleneck, tr.bottleneck:nth-child(even) { background:#fdecea; }
tr.bottleneck td:first-child { font-weight:600; }
.tag { display:inline-block; margin-left:6px; padding:0 6px; border-radius:4px;
       background:var(--bad); color:#fff; font-size:11px; font-weight:600; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
         font-weight:600; color:#fff; background:var(--muted); white-space:nowrap; }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); }
.badge.ref { background:var(--ref); } .badge.warn { background:var(--warn); } .badge.neutral { background:#5f6368; }
.pct.hot { color:var(--bad); font-weight:600; } .pct.warn { color:var(--warn); font-weight:600; }
.na { color:var(--muted); font-style:italic; margin:4px 0; }
.note { color:#5f6368; font-size:13px; margin:8px 0 0; }
.detail { color:#3c4043; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
          font-size:13px; word-break:break-word; }
figure { margin:14px 0 0; } figure img { max-width:100%; height:auto; }
ul.notes { margin:0; padding-left:20px; }
footer { color:var(--muted); font-size:12px; margin-top:18px; text-align:center; }
@media print { body { background:#fff; } section { break-inside:avoid; } }
"""


def _board_name(report: dict):
    # The schema has a dict, but a bare board name is easy to accept.
    board = report.get("board")
    return _dict(board).get("name") if isinstance(board, dict) else board


def _header(report: dict) -> str:
    board_d = _dict(report.get("board"))
    board_name = _board_name(report)
    clock = _number(board_d.get("clock_mhz"))
    items = [
        ("board", _esc(board_name) if board_name else NA),
        ("part", _esc(board_d["part"]) if board_d.get("part") else NA),
        ("clock", f"{clock:g} MHz" if clock is not None else NA),
    ]
    if report.get("created"):
        items.append(("built", _esc(report["created"])))
    meta = " &middot; ".join(f"{k} <b>{v}</b>" for k, v in items)
    model = _esc(report.get("model") or "unnamed model")
    return f"<header><h1>{model}</h1><div class=\"meta\">{meta}</div></header>"


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return (f'<div class="card {cls}"><div class="label">{label}</div>'
            f'<div class="value">{value}</div>{sub_html}</div>')


def _summary(report: dict, bottleneck: str | None) -> str:
    perf = _dict(report.get("performance"))
    ver = _dict(report.get("verification"))
    fold = _dict(report.get("folding"))

    fps = _number(perf.get("fps"))
    latency = _number(perf.get("latency_ms"))
    max_cycles = _number(perf.get("max_cycles"))
    crit = _number(perf.get("critical_path_cycles"))
    target = _number(fold.get("target_fps"))

    fps_sub = f"target {_fmt(target)} FPS" if target is not None else ""
    lat_sub = f"critical path {_fmt(crit)} cycles" if crit is not None else ""
    bn_sub = f"{_fmt(max_cycles)} cycles per frame" if max_cycles is not None else ""

    verdict = ver.get("verdict")
    vcls = _STATUS_CLASS.get(str(verdict).strip().lower(), "neutral") if verdict else "muted"
    vsub = ""
    if _number(ver.get("inputs")) is not None:
        vsub = f"{_fmt(ver['inputs'])} test inputs"
    failing = [s for s in _list(ver.get("stages"))
               if isinstance(s, dict) and str(s.get("status", "")).lower() == "mismatch"]
    if failing:
        first = failing[0]
        vsub = (f"first mismatch at <b>{_esc(first.get('name', '?'))}</b>: "
                f"{_esc(first.get('detail') or 'no detail')}")

    cards = [
        _card("Estimated throughput", f"{_fmt(fps)} FPS" if fps is not None else NA, fps_sub),
        _card("Latency", f"{_fmt(latency, 3)} ms" if latency is not None else NA, lat_sub),
        _card("Bottleneck layer", _esc(bottleneck) if bottleneck else NA, bn_sub),
        _card("Verification", _esc(verdict) if verdict else NA, vsub, vcls),
    ]
    fold_line = ""
    if fold:
        parts = [f"folding from <b>{_esc(fold.get('source') or NA)}</b>"]
        if target is not None:
            parts.append(f"target {_fmt(target)} FPS")
        parts.append(f"resource ceiling {100 * _ceiling(report):.0f}%")
        fold_line = f'<p class="note">{", ".join(parts)}</p>'
    return f'<section><h2>Summary</h2><div class="cards">{"".join(cards)}</div>{fold_line}</section>'


def _resources(rows: list[dict], ceiling: float, have_png: bool, report: dict) -> str:
    if all(r["used"] is None for r in rows):
        body = _na("no resource estimates in this report")
    else:
        trs = []
        for r in rows:
            pct = r["pct"]
            if pct is None:
                pct_html, status = "—", ""
            elif r["avail"] == 0 and r["used"] == 0:
                pct_html, status = "—", '<span class="badge muted">not on this board</span>'
            elif not math.isfinite(pct):
                pct_html = '<span class="pct hot">none on board</span>'
                status = '<span class="badge bad">over budget</span>'
            else:
                cls = "hot" if pct > 100 else "warn" if pct > 100 * ceiling else ""
                pct_html = f'<span class="pct {cls}">{pct:.1f}%</span>'
                status = ('<span class="badge bad">over budget</span>' if pct > 100 else
                          '<span class="badge warn">above ceiling</span>'
                          if pct > 100 * ceiling else '<span class="badge ok">fits</span>')
            trs.append(
                f"<tr><td>{_esc(r['label'])}</td><td class=\"num\">{_fmt(r['used'])}</td>"
                f"<td class=\"num\">{_fmt(r['avail'], missing=NA)}</td>"
                f"<td class=\"num\">{pct_html}</td><td>{status}</td></tr>"
            )
        bram36 = _number(_dict(_dict(report.get("board")).get("resources")).get("BRAM36"))
        bram_note = (f"BRAM is counted in 18 Kb halves, FINN's unit: the board's "
                     f"{_fmt(bram36)} &times; 36 Kb tiles = {_fmt(2 * bram36)} &times; 18 Kb. "
                     if bram36 is not None else "BRAM is counted in 18 Kb halves, FINN's unit. ")
        body = (
            "<table><thead><tr><th>Resource</th><th class=\"num\">Used (estimate)</th>"
            "<th class=\"num\">Available</th><th class=\"num\">Used %</th><th>Status</th>"
            f"</tr></thead><tbody>{''.join(trs)}</tbody></table>"
            f'<p class="note">{bram_note}Estimates come from FINN\'s analytical models '
            f"before synthesis; flip-flops are not estimated. Folding keeps each resource "
            f"under the {100 * ceiling:.0f}% ceiling to leave room for the shell and routing.</p>"
        )
    fig = (f'<figure><img src="{RESOURCES_PNG}" alt="percent of each board resource used">'
           "</figure>" if have_png else "")
    return f"<section><h2>Resources against the board</h2>{body}{fig}</section>"


def _layer_table(layers: list[dict], bottleneck: str | None, have_png: bool) -> str:
    if not layers:
        return f"<section><h2>Layers</h2>{_na('no per-layer data in this report')}</section>"
    cols = [("PE", 0), ("SIMD", 0), ("cycles", 0), ("LUT", 0), ("BRAM_18K", 0),
            ("URAM", 0), ("DSP", 0)]
    # Yosys synthesis counts (hw/synth), when run, sit beside FINN's estimates.
    cols += [(c, 0) for c in ("yosys_LUT", "yosys_FF", "yosys_BRAM_18K", "yosys_DSP")
             if any(c in layer for layer in layers)]
    head = "".join(f'<th class="num">{c}</th>' for c, _ in cols)
    trs = []
    for i, layer in enumerate(layers):
        name = layer.get("name")
        hot = name is not None and str(name) == bottleneck
        tag = '<span class="tag">bottleneck</span>' if hot else ""
        row_cls = ' class="bottleneck"' if hot else ""
        cells = "".join(f'<td class="num">{_fmt(layer.get(c), d)}</td>' for c, d in cols)
        trs.append(
            f'<tr{row_cls}><td class="num">{i}</td>'
            f"<td>{_fmt(name)}{tag}</td><td>{_fmt(layer.get('op'))}</td>{cells}</tr>"
        )
    fig = (f'<figure><img src="{CYCLES_PNG}" alt="cycles per frame for each layer">'
           "</figure>" if have_png else "")
    return (
        "<section><h2>Layers (dataflow order)</h2>"
        f'<table><thead><tr><th class="num">#</th><th>Name</th><th>Op</th>{head}</tr></thead>'
        f"<tbody>{''.join(trs)}</tbody></table>"
        '<p class="note">PE and SIMD set how many output channels and input elements a '
        "layer handles per cycle; the layer with the most cycles per frame sets the "
        f"throughput.</p>{fig}</section>"
    )


def _verification(report: dict) -> str:
    ver = _dict(report.get("verification"))
    stages = [s for s in _list(ver.get("stages")) if isinstance(s, dict)]
    if not stages:
        return f"<section><h2>Verification</h2>{_na()}</section>"
    trs = "".join(
        f"<tr><td>{_fmt(s.get('name'))}</td><td>{_badge(s.get('status'))}</td>"
        f"<td class=\"detail\">{_esc(s.get('detail') or '')}</td></tr>"
        for s in stages
    )
    inputs = _number(ver.get("inputs"))
    lead = (f'<p class="note">Each stage runs the same {_fmt(inputs)} inputs and is compared '
            "with the Brevitas reference.</p>" if inputs is not None else "")
    return (
        "<section><h2>Verification</h2>"
        "<table><thead><tr><th>Stage</th><th>Status</th><th>Detail</th></tr></thead>"
        f"<tbody>{trs}</tbody></table>{lead}</section>"
    )


def _steps(report: dict) -> str:
    steps = [s for s in _list(report.get("steps")) if isinstance(s, dict)]
    if not steps:
        return f"<section><h2>Build steps</h2>{_na()}</section>"
    trs = "".join(
        f"<tr><td>{_fmt(s.get('name'))}</td><td>{_badge(s.get('status'))}</td>"
        f"<td class=\"num\">{_fmt_seconds(s.get('seconds'))}</td>"
        f"<td class=\"detail\">{_esc(s.get('detail') or '')}</td></tr>"
        for s in steps
    )
    times = [t for t in (_number(s.get("seconds")) for s in steps) if t is not None]
    total = (f'<tfoot><tr><th>Total</th><th></th><th class="num">{_fmt_seconds(sum(times))}'
             "</th><th></th></tr></tfoot>" if times else "")
    return (
        "<section><h2>Build steps</h2>"
        '<table><thead><tr><th>Step</th><th>Status</th><th class="num">Time</th>'
        f"<th>Detail</th></tr></thead><tbody>{trs}</tbody>{total}</table></section>"
    )


def _notes(report: dict) -> str:
    notes = [n for n in _list(report.get("notes")) if n is not None and str(n).strip()]
    if isinstance(report.get("notes"), str) and report["notes"].strip():
        notes = [report["notes"]]
    if not notes:
        return ""
    items = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    return f'<section><h2>Notes</h2><ul class="notes">{items}</ul></section>'


# --------------------------------------------------------------------------

def render_html(report: dict, out_dir: Path) -> Path:
    """Write ``report.html`` and its PNG charts into ``out_dir``; return the HTML path.

    A chart without data is not drawn (and a stale one from an earlier run is
    removed) so the page never shows numbers from another build.
    """
    report = _dict(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    layers = _layers(report)
    bottleneck = _bottleneck(report, layers)
    ceiling = _ceiling(report)
    rows = _resource_rows(report)

    res_png, cyc_png = out_dir / RESOURCES_PNG, out_dir / CYCLES_PNG
    for png in (res_png, cyc_png):
        png.unlink(missing_ok=True)
    have_res = _plot_resources(rows, ceiling, res_png)
    have_cyc = _plot_cycles(layers, bottleneck, cyc_png)

    title = f"{report.get('model') or 'unnamed model'} on {_board_name(report) or NA}"
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>bnn2fpga report: {_esc(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        _header(report),
        _summary(report, bottleneck),
        _resources(rows, ceiling, have_res, report),
        _layer_table(layers, bottleneck, have_cyc),
        _verification(report),
        _steps(report),
        _notes(report),
        "<footer>generated by bnn2fpga</footer>",
        "</main></body></html>",
    ])
    out = out_dir / HTML_NAME
    out.write_text(page, encoding="utf-8")
    return out
