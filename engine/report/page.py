"""build_report: one self-contained report.html (plotly.js inlined; no network to view it).

Every string that comes from data (segment, category, brand names) is HTML-escaped before
it reaches a chart or a table. The page records script errors and the number of charts that
rendered in ``<body data-charts-rendered data-script-errors>`` for the browser test.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from plotly.offline import get_plotlyjs

from engine.io.atomic import write_text_atomic
from engine.report.charts import (
    chart_agreement,
    chart_categories,
    chart_funnel,
    chart_interest,
    chart_k,
    chart_lifecycle,
    chart_profile,
    chart_retention,
    chart_sizes,
    esc,
)
from engine.report.data import ReportData
from engine.report.predict_charts import (
    chart_calibration,
    chart_importance,
    chart_lift,
    chart_scores_by_segment,
)
from engine.report.value_charts import chart_alive, chart_clv_holdout, chart_clv_segments


def _table(frame: pl.DataFrame, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.iter_rows():
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            if col in formats and value is not None:
                cells.append(f"<td>{esc(format(value, formats[col]))}</td>")
            else:
                cells.append(f"<td>{esc('' if value is None else value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


CSS = """
body{font-family:Inter,system-ui,-apple-system,sans-serif;margin:0;background:#f8fafc;color:#0f172a}
header{background:linear-gradient(120deg,#1e3a8a,#7c3aed);color:white;padding:28px 40px}
header h1{margin:0;font-size:26px} header p{margin:6px 0 0;opacity:.85}
main{max-width:1200px;margin:0 auto;padding:24px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-bottom:20px}
.kpi{background:white;border-radius:12px;padding:14px 16px;box-shadow:0 1px 3px #0001}
.kpi b{display:block;font-size:22px;margin-top:4px}
.card{background:white;border-radius:12px;padding:16px;margin-bottom:20px;
  box-shadow:0 1px 3px #0001}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:20px}
@media(max-width:900px){.grid{display:block}}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #e2e8f0;text-align:left}
th{background:#f1f5f9} h2{font-size:18px;margin:4px 0 12px} .note{color:#475569;font-size:13px}
"""


def build_report(data: ReportData) -> str:
    """The report as one HTML string."""
    charts = [
        ("sizes", chart_sizes(data)),
        ("profile", chart_profile(data)),
        ("categories", chart_categories(data)),
        ("funnel", chart_funnel(data)),
        ("interest", chart_interest(data)),
        ("agreement", chart_agreement(data)),
        ("k", chart_k(data)),
        ("retention", chart_retention(data)),
        ("lifecycle", chart_lifecycle(data)),
        ("clv_segments", chart_clv_segments(data)),
        ("clv_holdout", chart_clv_holdout(data)),
        ("clv_alive", chart_alive(data)),
        ("predict_segments", chart_scores_by_segment(data)),
        ("predict_calibration", chart_calibration(data)),
        ("predict_lift", chart_lift(data)),
        ("predict_importance", chart_importance(data)),
    ]
    rendered = {
        name: fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{name}",
            config={"displaylogo": False},
        )
        for name, fig in charts
        if fig is not None
    }
    kpis = "".join(f'<div class="kpi">{esc(k)}<b>{esc(v)}</b></div>' for k, v in data.kpis.items())
    segments_table = _table(
        data.profiles.sort("segment").select(
            "segment",
            "segment_name",
            "users",
            "user_share",
            "buyer_share",
            "top_category",
            "name_rule",
        ),
        {"user_share": ".1%", "buyer_share": ".1%"},
    )
    revenue_table = _table(
        data.revenue.select(
            "segment_name",
            "users",
            "buyers",
            "conversion",
            "revenue",
            "revenue_share",
            "revenue_per_user",
            "avg_order_value",
        ),
        {
            "conversion": ".1%",
            "revenue": ",.0f",
            "revenue_share": ".1%",
            "revenue_per_user": ",.2f",
            "avg_order_value": ",.2f",
        },
    )
    session_table = _table(
        data.session_funnel.select("segment_name", "stage", "sessions", "of_previous", "of_first"),
        {"of_previous": ".1%", "of_first": ".2%"},
    )
    nb_cols = [
        c
        for c in (
            "product_id",
            "category",
            "brand",
            "views",
            "carts",
            "purchases",
            "purchase_per_view",
        )
        if c in data.viewed_not_bought.columns
    ]
    not_bought = _table(data.viewed_not_bought.select(nb_cols), {"purchase_per_view": ".3%"})
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in data.notes)
    method = "".join(f"<tr><th>{esc(a)}</th><td>{esc(b)}</td></tr>" for a, b in data.method)

    def card(name: str, extra: str = "") -> str:
        return f'<div class="card">{rendered[name]}{extra}</div>' if name in rendered else ""

    body = f"""
<header><h1>{esc(data.title)}</h1>
<p>Behavioural segments, funnel and product interest — generated by ecomscale</p></header>
<main>
<div class="kpis">{kpis}</div>
<div class="grid">{card("sizes")}{card("k")}</div>
<div class="card"><h2>Segments and why they are named so</h2>{segments_table}</div>
<div class="card"><h2>How the segments were found</h2><table>{method}</table></div>
{card("profile")}
{card("categories")}
{card("funnel")}
<div class="card"><h2>Revenue and conversion by segment</h2>{revenue_table}</div>
<div class="card"><h2>Session funnel</h2>{session_table}</div>
{card("interest")}
<div class="card"><h2>Most viewed, rarely bought</h2>
<p class="note">Among the top 5% of products by views, the lowest purchases per view.</p>
{not_bought}</div>
{card("retention")}
{card("lifecycle")}
{card("clv_segments")}
<div class="grid">{card("clv_holdout")}{card("clv_alive")}</div>
{card("predict_segments")}
<div class="grid">{card("predict_calibration")}{card("predict_lift")}</div>
{card("predict_importance")}
{card("agreement")}
<div class="card"><h2>Notes</h2>{notes}</div>
</main>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(data.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style>
<script>window.__scriptErrors=[];window.addEventListener("error",function(e){{window.__scriptErrors.push(String(e.message));document.body&&(document.body.dataset.scriptErrors=window.__scriptErrors.length);}});</script>
<script>{get_plotlyjs()}</script>
</head><body data-charts-expected="{len(rendered)}" data-script-errors="0">
{body}
<script>
window.addEventListener("load",function(){{
  var ok=0;
  document.querySelectorAll(".js-plotly-plot").forEach(function(d){{
    if(d.querySelector(".main-svg")&&d.data&&d.data.length)ok++;
  }});
  document.body.dataset.chartsRendered=ok;
  document.body.dataset.scriptErrors=window.__scriptErrors.length;
}});
</script>
</body></html>
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the report atomically (temporary file, then rename)."""
    return write_text_atomic(build_report(data), path)
