"""The report page: one self-contained HTML file (plotly.js inline, so it opens offline).

The page carries its numbers twice: as figures, and as JSON in <script id="ks-data"> (see
dashboards.data.to_json) for tests and scripts. A small inline script draws every figure and then
sets <html data-ks-status="rendered" data-ks-plots="N">; any JavaScript error sets
data-ks-status="error" and lists the message in <pre id="ks-errors">, so a headless browser's
dumped DOM says whether the page worked.
"""

from __future__ import annotations

import json
from html import escape

import pandas as pd

from dashboards import figures
from dashboards.data import ReportData, Section, collect, to_json
from storage.queries import NO_STUDY
from storage.store import Store

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
.meta, .note { color: #666; font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
.plot { width: 100%; }
.empty { font-size: 18px; padding: 16px; background: #fff8e1; border: 1px solid #f0d890; }
#ks-errors:empty { display: none; } #ks-errors { color: #b00; }
"""

# Before plotly.js, so that an error while loading it is caught too.
ERROR_HOOK = """
window.ksErrors = [];
window.ksRecord = function (message) {
  window.ksErrors.push(String(message));
  document.documentElement.setAttribute("data-ks-status", "error");
  var box = document.getElementById("ks-errors");
  if (box) { box.textContent = window.ksErrors.join("\\n"); }
};
window.onerror = function (message, source, line) { window.ksRecord(message + " (" + source + ":" + line + ")"); };
window.addEventListener("unhandledrejection", function (e) { window.ksRecord("unhandled: " + e.reason); });
"""

RENDER = """
(function () {
  var figs = JSON.parse(document.getElementById("ks-figures").textContent);
  var config = {displaylogo: false, responsive: true};
  var draws = figs.map(function (f) { return Plotly.newPlot(f.id, f.figure.data, f.figure.layout, config); });
  Promise.all(draws).then(function () {
    if (window.ksErrors.length) { return; }
    document.documentElement.setAttribute("data-ks-plots", String(figs.length));
    document.documentElement.setAttribute("data-ks-status", "rendered");
    document.title = document.title + " [rendered " + figs.length + " plots]";
  }).catch(function (e) { window.ksRecord(e && e.stack ? e.stack : e); });
})();
"""


def _json_script(element_id: str, payload: str) -> str:
    # "</" would end the script element early; "<\\/" is the same JSON string.
    safe = payload.replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{safe}</script>'


def _table(frame: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{escape(_fmt(v))}</td>'
                         for c, v in zip(frame.columns, row, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


class _Page:
    """Collects HTML parts and the figures they refer to."""

    def __init__(self):
        self.parts: list[str] = []
        self.figures: list[tuple[str, str]] = []  # (div id, figure JSON)

    def add(self, html: str) -> None:
        self.parts.append(html)

    def plot(self, fig, missing: str) -> None:
        if fig is None:
            self.add(f'<p class="note">{escape(missing)}</p>')
            return
        div = f"ks-plot-{len(self.figures)}"
        self.figures.append((div, fig.to_json()))
        self.add(f'<div class="plot" id="{div}"></div>')


def _anchor(section: Section) -> str:
    return "s-" + "".join(ch if ch.isalnum() else "-" for ch in f"{section.fingerprint}-{section.model}")


def _section(page: _Page, s: Section) -> None:
    w = s.winners
    fused = int((w["arm"] == "fused").sum())
    best = f", best speedup {w['speedup'].max():.2f}x" if not w.empty else ""
    page.add(f'<h2 id="{_anchor(s)}">{escape(s.title)}</h2>')
    page.add(f'<p class="meta">{len(s.studies)} studies, {len(s.trials)} trials, {len(w)} winners '
             f"({fused} fused){best}; ops: {escape(', '.join(s.ops))}</p>")
    if _on_cpu(s):
        page.add('<p class="empty ks-cpu">Tuned without a GPU, through Triton\'s interpreter on the CPU: these '
                 "times exercise the search loop and say nothing about any GPU (the interpreter is thousands of "
                 "times slower than the unfused torch path, so every winner is unfused, 1.00x).</p>")
    _steps(page, s.steps)
    page.plot(figures.speedup_heatmap(s), "no winners yet: no speedup to show")
    page.plot(figures.latency_lines(s), "no winners yet: no latencies to show")
    page.add("<h3>search progress</h3>")
    page.plot(figures.best_so_far(s), "no trials with a trial number")
    page.plot(figures.failure_shares(s), "no failed or incorrect trials")
    page.add("<h3>parameters that mattered</h3>")
    imp = s.importances
    if not imp.empty and (imp["note"] == NO_STUDY).all():
        page.add('<p class="note ks-imported">No Optuna study behind these winners: they were imported from a '
                 "dispatch table, which carries no trials.</p>")
        return
    page.add('<p class="note">PED-ANOVA importances of each study (Optuna), one heatmap per op; a study needs a '
             "few completed trials to have any.</p>")
    for op in s.ops:
        page.plot(figures.importance_heatmap(s, op), f"{op}: no study with computable importances")
        notes = imp[(imp["op"] == op) & imp["param"].isna()]
        # One line per reason, listing its buckets: the same note once per bucket was a wall of repeats.
        items = "".join(f"<li>M={', '.join(str(m) for m in group['m'])}: {escape(str(note))}</li>"
                        for note, group in notes.groupby("note", sort=False))
        if items:
            page.add(f'<ul class="note">{items}</ul>')


def _steps(page: _Page, steps: pd.DataFrame) -> None:
    """The end-to-end checks of the section (decode tok/s per batch in each arm, what ships): one table
    per check, newest first. Nothing when tune never ran one here."""
    if steps.empty:
        return
    page.add("<h3>end to end: the decode step with the table</h3>")
    page.add('<p class="note">What <code>tune</code> measured after tuning: decode tokens/s of the model (CUDA graph, '
             "random weights) with no table (unfused), with the new table and with the table exported before "
             "the tune (previous), and the new table with its residual stream in fixed point (fixed_stream; "
             "the table arm keeps the model dtype), and at batch 1 with decode attention's combine folded into "
             "o_proj (fold and fold_fixed). Where the new table is not the fastest, <code>export</code> "
             "writes the faster arm's choices at that batch (ships); where it is, its fastest variant "
             "(stream, fold).</p>")
    for run_id, run in steps.groupby("run_id", sort=False):
        first = run.iloc[0]
        state = "export applies this check" if first["current"] else "the winners have changed since"
        page.add(f'<p class="note ks-steps" data-run="{int(run_id)}">table {escape(str(first["table_hash"]))} '
                 f"({state}), context {int(first['context'])}, measured {first['created_at']:%Y-%m-%d %H:%M}</p>")
        arms = [arm for arm in ("unfused", "table", "fixed_stream", "fold", "fold_fixed", "previous")
                if run[f"{arm}_tok_s"].notna().any()]
        shown = pd.DataFrame({"batch": run["batch"]})
        for arm in arms:
            shown[f"{arm} tok/s"] = run[f"{arm}_tok_s"].map(lambda v: "-" if v != v else f"{v:,.0f}")
        shown["speedup"] = run["speedup"]
        if "previous" in arms:
            shown["vs previous"] = run["vs_previous"]
        shown["ships"] = run["ships"]
        if "fixed_stream" in arms:
            shown["stream"] = run["stream"].map(lambda v: v if isinstance(v, str) else "-")
        if "fold" in arms or "fold_fixed" in arms:
            shown["fold"] = run["fold"].map(lambda v: "yes" if v is True else "no" if v is False else "-")
        page.add(_table(shown, left=("ships", "stream", "fold")))


def _on_cpu(section: Section) -> bool:
    """Measured by Triton's interpreter (kernel_space.fingerprint names the CPU device so)."""
    name = section.gpu.lower()
    return "interpreter" in name or name.startswith("cpu")


def _comparison(page: _Page, data: ReportData) -> None:
    w = data.winners
    page.add('<h2 id="gpus">GPUs side by side</h2>')
    summary = (w.drop_duplicates(["fingerprint", "op", "n", "k", "dtype", "m"])
               .groupby(["gpu", "fingerprint"], sort=False)
               .agg(winners=("m", "size"), fused=("arm", lambda a: int((a == "fused").sum())),
                    median_speedup=("speedup", "median"), max_speedup=("speedup", "max")).reset_index())
    page.add(_table(summary, left=("gpu", "fingerprint")))
    for model in dict.fromkeys(w["model"]):
        fig = figures.gpu_comparison(w, model)
        if fig is None:
            continue
        page.plot(fig, "")
        rows = w[w["model"] == model].assign(gpu_key=lambda f: f["gpu"] + " [" + f["fingerprint"] + "]")
        wide = rows.pivot_table(index=["op", "m"], columns="gpu_key", values="median_us", aggfunc="first", sort=False)
        page.add(f'<p class="note">{escape(model)}: winner us per GPU</p>')
        page.add(_table(wide.reset_index(), left=("op",)))


def render(data: ReportData) -> str:
    """The HTML page of `data` (see collect)."""
    page = _Page()
    page.add(f'<h1>kernel-search report</h1><p class="meta">{escape(data.db)} &middot; {escape(data.generated_at)}'
             "</p>")
    if data.empty:
        page.add(f'<p class="empty" id="ks-empty">The database at {escape(data.db)} holds no studies yet: run '
                 "<code>kernel-search tune</code> or <code>kernel-search import</code> first.</p>")
    else:
        links = [f'<a href="#{_anchor(s)}">{escape(s.title)}</a>' for s in data.sections]
        if len(data.gpus) > 1:
            links.insert(0, '<a href="#gpus">GPUs side by side</a>')
            _comparison(page, data)
        page.parts.insert(1, "<nav><p>" + " &middot; ".join(links) + "</p></nav>")
        for section in data.sections:
            _section(page, section)
    figs = "[" + ",".join(f'{{"id": "{div}", "figure": {fig}}}' for div, fig in page.figures) + "]"
    plotly_js = ""
    if page.figures:
        from plotly.offline import get_plotlyjs

        plotly_js = f"<script>{get_plotlyjs()}</script>"
    body = "\n".join(page.parts)
    return ('<!DOCTYPE html>\n<html lang="en" data-ks-status="pending"><head><meta charset="utf-8">'
            "<title>kernel-search report</title>"
            f"<style>{STYLE}</style><script>{ERROR_HOOK}</script></head>\n"
            f'<body>\n{body}\n<pre id="ks-errors"></pre>\n{plotly_js}\n'
            f"{_json_script('ks-data', json.dumps(to_json(data), allow_nan=False))}\n"
            f"{_json_script('ks-figures', figs)}\n"
            f"<script>{RENDER if page.figures else _NOTHING_TO_DRAW}</script>\n</body></html>\n")


_NOTHING_TO_DRAW = """
document.documentElement.setAttribute("data-ks-plots", "0");
if (!window.ksErrors.length) { document.documentElement.setAttribute("data-ks-status", "rendered"); }
"""


def build_report(store: Store) -> str:
    """The report page of the database behind `store`, as HTML text."""
    return render(collect(store))
