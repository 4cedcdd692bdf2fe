"""The report page: one self-contained HTML file (inline CSS, a few lines of JavaScript, embedded
pictures and SVG plots), readable from disk without a server or network.

Tables with ``class="sortable"`` sort on a click on their header (numbers by ``data-v``);
per-name tables start worst first (lowest F1, then most ground truth). Each gallery card has a
view toggle (side by side / ground truth / prediction) and the raw model text in a
``<details>`` element.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from sceneparser import __version__
from sceneparser.evaluation.report.analysis import EXTRA_TYPES, LEVELS, MISS_TYPES

DEFINITIONS = {
    "L1": "Objects: F1 of predicted objects that carry the queried name and overlap a ground-truth object "
          "with IoU ≥ 0.5, over all samples.",
    "L2": "Parts: F1 of predicted parts that lie in a correctly found object and match a ground-truth part "
          "of it by name and IoU ≥ 0.5; parts of missed objects all count as misses.",
    "L3": "Affordances: F1 of predicted (action, point) pairs that lie in a correctly found part, name the "
          "ground-truth action and put the point inside its region (mask, else box).",
    "ParseRate": "Share of ground-truth objects with parts or affordances whose object was found (IoU ≥ 0.5) "
                 "with the expected structure (parts, affordances); it checks shape, not names or boxes.",
}
LEVEL_OF = {"L1": "object", "L2": "part", "L3": "affordance"}
ERROR_HELP = {
    "unparsable": "the model's answer could not be parsed, so nothing was predicted",
    "parent missed": "its object (or, for affordances, its part) was not matched, so it could not be",
    "parent unmatched": "it belongs to a predicted object or part that matched no ground truth",
    "mislocalised": "a same-name prediction exists but overlaps with IoU between 0.1 and 0.5 "
                    "(affordances: the point is outside the region)",
    "wrong name": "a prediction overlaps with IoU ≥ 0.5 (affordances: a point inside the region) "
                  "but under another name",
    "missed": "no prediction close to it",
    "extra": "no ground truth close to it",
}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.5em;margin:.4em 0}h2{margin-top:1.8em;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{margin:1.2em 0 .4em}
nav a{margin-right:14px}
.meta{color:#555;font-size:.9em}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:8px 12px;margin:8px 0}
.missing{background:#f3f3f3;border:1px dashed #aaa;padding:10px 14px;color:#555;margin:8px 0}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:.92em}
th,td{border:1px solid #ddd;padding:4px 9px;text-align:right}
th{background:#f0f0f3;position:sticky;top:0}
td.l,th.l{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:' \\2195';color:#aaa}
table.sortable th.asc:after{content:' \\2191';color:#000}table.sortable th.desc:after{content:' \\2193';color:#000}
.bar{display:inline-block;height:9px;background:#d62728;vertical-align:middle;margin-left:6px}
.bar.good{background:#2ca02c}
.cards{display:flex;flex-direction:column;gap:18px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px}
.card .head{display:flex;gap:14px;flex-wrap:wrap;align-items:baseline}
.card .pics{display:flex;gap:10px;flex-wrap:wrap;margin-top:8px}
.card figure{margin:0}.card figcaption{font-size:.85em;color:#555}
.card img{max-width:100%;border:1px solid #ccc}
.card[data-view=gt] .pred,.card[data-view=pred] .gt{display:none}
.toggle button{border:1px solid #888;background:#fff;padding:2px 8px;cursor:pointer;font-size:.85em}
.toggle button.on{background:#333;color:#fff}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:8px;max-height:320px;overflow:auto;font-size:.82em}
.defs dt{font-weight:600}.defs dd{margin:0 0 6px 0}
.plot svg{max-width:100%;height:auto}
.muted{color:#777}
"""

JS = """
function cellValue(td){var v=td.getAttribute('data-v');if(v!==null&&v!==''&&!isNaN(parseFloat(v)))return parseFloat(v);
  return td.textContent.trim().toLowerCase();}
function sortTable(th){var table=th.closest('table');var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=!th.classList.contains('asc');table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
  th.classList.add(asc?'asc':'desc');var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=cellValue(a.cells[idx]),y=cellValue(b.cells[idx]);
    if(typeof x!==typeof y){x=String(x);y=String(y);}return (x<y?-1:x>y?1:0)*(asc?1:-1);});
  rows.forEach(function(r){body.appendChild(r);});}
function setView(btn){var card=btn.closest('.card');card.setAttribute('data-view',btn.getAttribute('data-view'));
  card.querySelectorAll('.toggle button').forEach(function(b){b.classList.toggle('on',b===btn);});}
document.addEventListener('DOMContentLoaded',function(){
  document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){sortTable(th);});});
  document.querySelectorAll('.toggle button').forEach(function(b){b.addEventListener('click',function(){setView(b);});});
});
"""


def _f(v, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"


def _num(v, digits: int = 4) -> str:
    """A cell with its sort value."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        text = str(v) if isinstance(v, int) else f"{v:.{digits}f}"
        return f'<td data-v="{v}">{text}</td>'
    return '<td data-v="">–</td>'


def _missing(text: str) -> str:
    return f'<div class="missing">{escape(text)}</div>'


def _table(headers, rows, *, sortable: bool = False, cls: str = "", left=(0,)) -> str:
    head = "".join(f'<th class="l">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    klass = " ".join(x for x in (cls, "sortable" if sortable else "") if x)
    return (f'<table class="{klass}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</tbody></table>")


# ------------------------------------------------------------------------------ sections
def _headline(final, filtered, computed) -> str:
    levels = filtered if isinstance(filtered, dict) and all(k in filtered for k in ("L1", "L2", "L3")) else computed
    source = "eval_results_filtered.json" if levels is filtered else "recomputed from answer.jsonl"
    head = final if isinstance(final, dict) else None
    if head is None and levels is not None:
        head = {k: (levels.get(k) or {}).get("f1") for k in ("L1", "L2", "L3")}
        head["ParseRate"] = levels.get("ParseRate")
    if head is None:
        return _missing("No metrics: final_metrics.json, eval_results_filtered.json and answer.jsonl are all missing.")
    rows = []
    for key in ("L1", "L2", "L3", "ParseRate"):
        v = head.get(key)
        lv = (levels or {}).get(key) if key != "ParseRate" else None
        lv = lv if isinstance(lv, dict) else {}
        cells = [f'<td class="l"><b>{key}</b></td>', f'<td class="big" id="metric-{key}">{_f(v)}</td>']
        for k in ("precision", "recall", "f1"):
            cells.append(f'<td id="{key}-{k}">{_f(lv.get(k))}</td>' if lv else "<td>–</td>")
        for k in ("tp", "fp", "fn"):
            cells.append(f"<td>{lv.get(k, '–')}</td>" if lv else "<td>–</td>")
        cells.append(f'<td class="l">{escape(DEFINITIONS[key])}</td>')
        rows.append("".join(cells))
    table = _table(["metric", "value", "precision", "recall", "F1", "tp", "fp", "fn", "what it measures"], rows,
                   cls="headline", left=(0, 8))
    return (table + f'<p class="meta">Values from final_metrics.json (or {escape(source)}); precision / recall / '
            f"F1 and counts per level from {escape(source)}. All computed after the filters (placeholder parts "
            "and <code>__none__</code> actions removed), as the published numbers.</p>")


def _name_table(level, title: str, first: str, with_samples: bool) -> str:
    rows = []
    items = list(level.by_name.items())
    items.sort(key=lambda kv: (kv[1].prf()["f1"], -kv[1].gt, str(kv[0])))
    for name, s in items:
        prf = s.prf()
        cells = [f'<td class="l">{escape(str(name))}</td>']
        cells += [_num(prf["precision"]), _num(prf["recall"]),
                  f'<td data-v="{prf["f1"]}">{prf["f1"]:.4f}<span class="bar{" good" if prf["f1"] >= 0.5 else ""}" '
                  f'style="width:{round(prf["f1"] * 60)}px"></span></td>']
        cells += [_num(s.gt), _num(s.pred), _num(s.tp)]
        if with_samples:
            cells.append(_num(s.samples))
        rows.append("".join(cells))
    headers = [first, "precision", "recall", "F1", "ground truth", "predicted", "matched"] + (
        ["samples"] if with_samples else [])
    if not rows:
        return f"<h3>{escape(title)}</h3>" + _missing("nothing at this level in the answers")
    return f"<h3>{escape(title)}</h3>" + _table(headers, rows, sortable=True, cls="per-name")


def _examples(examples) -> str:
    if not examples:
        return ""
    items = []
    for e in examples:
        where = f'{escape(str(e.get("image_path")))} · {escape(str(e.get("category")))} (line {e.get("line")})'
        items.append(f'<li><a href="#sample-{e.get("line")}">{where}</a>: {escape(str(e.get("detail")))}</li>')
    return "<ul>" + "".join(items) + "</ul>"


def _errors(analysis) -> str:
    out = []
    for level_name in LEVELS:
        lv = analysis.levels[level_name]
        fn, fp = lv.gt - lv.tp, lv.pred - lv.tp
        rows = []
        for side, types, total in (("miss", MISS_TYPES, fn), ("extra", EXTRA_TYPES, fp)):
            counts = lv.misses if side == "miss" else lv.extras
            for t in types:
                n = counts[t]
                if not n:
                    continue
                share = n / total if total else 0.0
                ex = _examples(lv.examples.get((side, t)))
                rows.append(
                    f'<td class="l">{"missed GT (fn)" if side == "miss" else "extra prediction (fp)"}</td>'
                    f'<td class="l"><b>{escape(t)}</b><br><span class="muted">{escape(ERROR_HELP[t])}</span></td>'
                    f"{_num(n)}{_num(share, 3)}"
                    f'<td class="l">{("<details><summary>examples</summary>" + ex + "</details>") if ex else ""}</td>')
        head = f"<h3>{level_name}s: {lv.tp} matched, {fn} missed, {fp} extra</h3>"
        out.append(head + (_table(["side", "error type", "count", "share", "examples"], rows, cls="errors",
                                  left=(0, 1, 4))
                           if rows else '<p class="muted">no errors</p>'))
    return "".join(out)


def _confusions(level, what: str) -> str:
    if not level.confusions:
        return f'<p class="muted">No {what} confusions: no unmatched ground truth had a differently named prediction in its place.</p>'
    rows = [f'<td class="l">{escape(str(g))}</td><td class="l">{escape(str(p))}</td>{_num(n)}'
            for (g, p), n in sorted(level.confusions.items(), key=lambda kv: -kv[1])]
    return _table(["ground truth", "predicted as", "count"], rows, sortable=True, cls="confusions", left=(0, 1))


def _status(analysis, summary) -> str:
    counts = analysis.status_counts if analysis else (summary or {}).get("parse_status") or {}
    if not counts:
        return _missing("no parse status: answer.jsonl and eval_summary.json are missing")
    total = sum(counts.values())
    rows = []
    for k, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        ex = _examples((analysis.status_examples if analysis else {}).get(k))
        rows.append(f'<td class="l">{escape(k)}</td>{_num(n)}{_num(n / total if total else 0.0, 3)}'
                    f'<td class="l">{("<details><summary>examples</summary>" + ex + "</details>") if ex else ""}</td>')
    return _table(["parse status", "answers", "share", "examples"], rows, cls="status", left=(0, 3))


def _card(card) -> str:
    ref = card.ref
    head = (f'<span><b>{escape(str(ref.image_path))}</b></span><span>category <b>{escape(str(ref.category))}</b></span>'
            f"<span>sample F1 {ref.quality:.3f}</span><span>status {escape(str(card.parse_status))}</span>"
            f'<span class="muted">line {ref.line}</span>')
    if card.problem:
        pics = _missing(f"no picture: {card.problem}")
        toggle = ""
    else:
        pics = (f'<div class="pics"><figure class="gt"><img alt="ground truth" src="{card.gt_uri}">'
                f"<figcaption>ground truth</figcaption></figure>"
                f'<figure class="pred"><img alt="prediction" src="{card.pred_uri}">'
                f"<figcaption>prediction</figcaption></figure></div>")
        toggle = ('<span class="toggle"><button class="on" data-view="both">side by side</button>'
                  '<button data-view="gt">ground truth</button><button data-view="pred">prediction</button></span>')
    err = f"<p>parse error: {escape(str(card.parse_error))}</p>" if card.parse_error else ""
    raw = (f"<details><summary>raw model text ({len(card.raw_response)} characters)</summary>"
           f"<pre>{escape(card.raw_response) or '(empty)'}</pre></details>")
    return (f'<div class="card" id="sample-{ref.line}" data-view="both"><div class="head">{head}{toggle}</div>'
            f"{pics}{err}{raw}</div>")


def _gallery(cards, what: str) -> str:
    if not cards:
        return _missing(f"no {what} samples to show")
    return '<div class="cards">' + "".join(_card(c) for c in cards) + "</div>"


def _plots(figures, plot_problem, analysis) -> str:
    if analysis is None:
        return _missing("no plots: answer.jsonl is missing")
    if plot_problem:
        return _missing(f"no plots: {plot_problem}")
    parts = []
    if "iou" in figures:
        parts.append('<h3>IoU of each ground-truth object and part</h3><div class="plot">' + figures["iou"]
                     + '</div><p class="meta">Dashed line: the match threshold 0.5; dotted: 0.1, below which a '
                     "near miss counts as missed rather than mislocalised. A pile just under 0.5 means boxes are "
                     "shifted; a pile at 0 means nothing of that name was predicted.</p>")
    if "errors" in figures:
        parts.append('<h3>Error types per level</h3><div class="plot">' + figures["errors"] + "</div>")
    if "calibration" in figures:
        parts.append('<h3>Confidence scores</h3><div class="plot">' + figures["calibration"] + "</div>")
    else:
        parts.append('<p class="muted">No score-vs-correctness plot: the predictions in answer.jsonl carry no '
                     "confidence scores.</p>")
    return "".join(parts)


def _meta(results_dir: Path, manifest, summary, analysis, image_root) -> str:
    items = [f"results <code>{escape(str(results_dir))}</code>"]
    if manifest:
        model = (manifest.get("model") or {}).get("path")
        data = (manifest.get("data") or {}).get("path")
        items.append(f"model <code>{escape(str(model))}</code>")
        items.append(f"data <code>{escape(str(data))}</code>")
    if analysis is not None:
        items.append(f"{analysis.num_lines} answers")
    if summary and summary.get("timing", {}).get("total_s") is not None:
        items.append(f"eval took {summary['timing']['total_s']:.0f} s")
    items.append(f"images from <code>{escape(str(image_root or 'the current directory'))}</code>")
    items.append(f"sceneparser {escape(__version__)}")
    return '<p class="meta">' + " · ".join(items) + "</p>"


def render(*, title, results_dir, manifest, final, filtered, summary, analysis, computed, cards_worst, cards_best,
           figures, plot_problem, warnings, image_root) -> str:
    body = [f"<h1>{escape(title)}</h1>", _meta(results_dir, manifest, summary, analysis, image_root)]
    body.append('<nav><a href="#metrics">metrics</a><a href="#errors">error types</a><a href="#tables">per name</a>'
                '<a href="#confusions">confusions</a><a href="#plots">plots</a><a href="#worst">worst</a>'
                '<a href="#best">best</a></nav>')
    for w in warnings:
        body.append(f'<div class="warn">warning: {escape(w)}</div>')
    body.append('<h2 id="metrics">Headline metrics</h2>' + _headline(final, filtered, computed))
    body.append("<h3>Parse status of the answers</h3>" + _status(analysis, summary))
    no_answers = _missing("answer.jsonl is missing or unreadable, so this section cannot be shown")
    if analysis is not None:
        body.append('<h2 id="errors">Where the errors come from</h2>'
                    '<p class="meta">Every missed ground-truth item (fn) and every extra prediction (fp) at each '
                    "level gets one type; a mislocalised or wrongly named pair counts once on each side. Click "
                    "an example to jump to its gallery card when it is shown there.</p>" + _errors(analysis))
        body.append('<h2 id="tables">Per category, part and action</h2><p class="meta">Click a header to sort; '
                    "rows start worst first (lowest F1).</p>"
                    + _name_table(analysis.levels["object"], "Objects per category (L1)", "category", True)
                    + _name_table(analysis.levels["part"], "Parts per part name (L2)", "part", False)
                    + _name_table(analysis.levels["affordance"], "Affordances per action (L3)", "action", False))
        body.append('<h2 id="confusions">Confusions</h2><p class="meta">A ground-truth item left unmatched while a '
                    "prediction of another name sits on it (parts: IoU ≥ 0.5 inside a matched object; actions: a "
                    "point inside the region of a matched part).</p><h3>Part names</h3>"
                    + _confusions(analysis.levels["part"], "part-name")
                    + "<h3>Actions</h3>" + _confusions(analysis.levels["affordance"], "action"))
    else:
        for anchor, name in (("errors", "Where the errors come from"), ("tables", "Per category, part and action"),
                             ("confusions", "Confusions")):
            body.append(f'<h2 id="{anchor}">{name}</h2>' + no_answers)
    body.append('<h2 id="plots">Plots</h2>' + _plots(figures, plot_problem, analysis))
    if analysis is not None:
        body.append(f'<h2 id="worst">The {len(cards_worst)} worst samples</h2><p class="meta">Lowest F1 over '
                    "objects, parts and affordances together. Boxes: thick = object, thin = part; discs = "
                    "affordance points (ground truth: the first sampled point).</p>" + _gallery(cards_worst, "worst"))
        body.append(f'<h2 id="best">The {len(cards_best)} best samples</h2>' + _gallery(cards_best, "best"))
    else:
        body.append('<h2 id="worst">Gallery</h2>' + no_answers)
    data = {"final": final, "levels": {k: (computed or {}).get(k) for k in ("L1", "L2", "L3")} if computed else None}
    data_text = json.dumps(data).replace("</", "<\\/")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{''.join(body)}</main>"
            f'<script type="application/json" id="report-data">{data_text}</script>'
            f"<script>{JS}</script></body></html>\n")
