"""build_report: one self-contained report.html (plotly.js inlined; no network to view it).

Every string that comes from data (segment, category, brand names) is HTML-escaped before
it reaches a chart or a table. The page records script errors and the number of charts that
rendered in ``<body data-charts-rendered data-script-errors>`` for the browser test.
"""

from __future__ import annotations

import html
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

PROFILE_FEATURES = (
    "n_events",
    "n_sessions",
    "events_per_session",
    "view_to_cart",
    "cart_abandon_rate",
    "purchase_session_rate",
    "n_purchases",
    "revenue",
    "avg_order_value",
    "avg_view_price",
    "recency_days",
    "active_days",
)
PALETTE = (
    *("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6"),
    *("#ec4899", "#14b8a6", "#f97316", "#6366f1", "#84cc16"),
)
MAX_SCATTER_POINTS = 4000


@dataclass
class ReportData:
    """Everything the report shows (collected, small tables)."""

    title: str
    kpis: dict[str, str]
    profiles: pl.DataFrame  # engine.segments.profile + segment_name, name_rule
    funnel: pl.DataFrame  # engine.insights.funnel
    session_funnel: pl.DataFrame
    category_preference: pl.DataFrame
    product_interest: pl.DataFrame
    viewed_not_bought: pl.DataFrame
    revenue: pl.DataFrame
    spearman: float | None
    k_scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    ari: float | None = None
    contingency: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": esc(title), "x": 0.01, "font": {"size": 16}},
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        template="plotly_white",
        font={"family": "Inter, system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.15},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _segment_names(data: ReportData) -> list[str]:
    return [esc(n) for n in data.profiles.sort("segment")["segment_name"].to_list()]


def chart_sizes(data: ReportData) -> go.Figure:
    p = data.profiles.sort("segment")
    fig = go.Figure(
        go.Bar(
            x=p["users"].to_list(),
            y=_segment_names(data),
            orientation="h",
            marker_color=[PALETTE[i % len(PALETTE)] for i in range(p.height)],
            text=[f"{s:.1%}" for s in p["user_share"].to_list()],
            textposition="auto",
            hovertemplate="%{y}: %{x:,} users<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Segment sizes (users)", 80 + 45 * p.height)


def chart_profile(data: ReportData) -> go.Figure:
    p = data.profiles.sort("segment")
    cols = [c for c in PROFILE_FEATURES if c in p.columns]
    values = p.select(cols).to_numpy().astype(float)
    std = values.std(axis=0)
    z = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
    text = [[f"{v:,.2f}" for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=_segment_names(data),
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            colorbar={"title": "z"},
            hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig,
        "Segment profiles (mean per user; colour: relative to other segments)",
        120 + 50 * p.height,
    )


def chart_categories(data: ReportData) -> go.Figure:
    c = data.category_preference
    wide = c.pivot(on="category", index="segment_name", values="lift", sort_columns=True).fill_null(
        0
    )
    order = {name: i for i, name in enumerate(data.profiles.sort("segment")["segment_name"])}
    wide = wide.with_columns(
        pl.col("segment_name").replace_strict(order, default=99).alias("_o")
    ).sort("_o")
    cats = [col for col in wide.columns if col not in ("segment_name", "_o")]
    lift = wide.select(cats).to_numpy().astype(float)
    fig = go.Figure(
        go.Heatmap(
            z=np.log2(np.clip(lift, 1 / 16, 16)),
            x=[esc(x) for x in cats],
            y=[esc(x) for x in wide["segment_name"].to_list()],
            text=[[f"{v:.2f}x" for v in row] for row in lift],
            texttemplate="%{text}",
            colorscale="PuOr",
            zmid=0,
            colorbar={"title": "log2 lift"},
            hovertemplate="%{y}<br>%{x}: lift %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig,
        "Category preference by segment (lift over the overall view mix)",
        120 + 50 * wide.height,
    )


def chart_funnel(data: ReportData) -> go.Figure:
    fig = go.Figure()
    names = data.profiles.sort("segment")["segment_name"].to_list()
    for i, name in enumerate(names):
        rows = data.funnel.filter(pl.col("segment_name") == name).sort("step")
        fig.add_bar(
            name=esc(name),
            x=rows["stage"].to_list(),
            y=rows["of_first"].to_list(),
            marker_color=PALETTE[i % len(PALETTE)],
            customdata=rows["users"].to_list(),
            hovertemplate=f"{esc(name)}<br>%{{x}}: %{{y:.1%}} "
            "(%{customdata:,} users)<extra></extra>",
        )
    fig.update_yaxes(tickformat=".2~%", type="log", title="share of viewers (log)")
    return _layout(fig, "Funnel per segment: view → add_to_cart → purchase (share of viewers)")


def chart_interest(data: ReportData) -> go.Figure:
    p = data.product_interest.head(MAX_SCATTER_POINTS)
    fig = go.Figure()
    cats = (
        sorted(p["category"].fill_null("(none)").unique().to_list())
        if "category" in p.columns
        else ["all"]
    )
    for i, cat in enumerate(cats):
        rows = (
            p.filter(pl.col("category").fill_null("(none)") == cat)
            if "category" in p.columns
            else p
        )
        brand = (
            rows["brand"].fill_null("").to_list() if "brand" in rows.columns else [""] * rows.height
        )
        fig.add_scatter(
            name=esc(cat),
            x=rows["views"].to_list(),
            y=(rows["purchases"] + 0.5).to_list(),
            mode="markers",
            marker={"size": 6, "opacity": 0.6, "color": PALETTE[i % len(PALETTE)]},
            customdata=[
                [int(pid), esc(b)]
                for pid, b in zip(rows["product_id"].to_list(), brand, strict=True)
            ],
            hovertemplate="product %{customdata[0]} (%{customdata[1]})<br>"
            f"%{{x:,}} views, purchases %{{y:.0f}}<extra>{esc(cat)}</extra>",
        )
    fig.update_xaxes(type="log", title="views")
    fig.update_yaxes(type="log", title="purchases + 0.5")
    rho = (
        ""
        if data.spearman is None or math.isnan(data.spearman)
        else f" — Spearman ρ = {data.spearman:.2f}"
    )
    return _layout(
        fig, f"Product interest vs purchases (top {p.height:,} products by views){rho}", 480
    )


def chart_agreement(data: ReportData) -> go.Figure | None:
    if data.contingency is None or data.ari is None:
        return None
    t = data.contingency.sort("segment")
    personas = [c for c in t.columns if c not in ("segment", "segment_name")]
    counts = t.select(personas).to_numpy().astype(float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=[esc(p) for p in personas],
            y=[esc(s) for s in t["segment_name"].to_list()],
            text=[[f"{int(v):,}" for v in row] for row in counts],
            texttemplate="%{text}",
            colorscale="Greens",
            colorbar={"title": "share of segment"},
            hovertemplate="%{y} × %{x}: %{text} users<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, f"Segments vs planted personas (ARI = {data.ari:.3f})", 120 + 50 * t.height)


def chart_k(data: ReportData) -> go.Figure | None:
    if data.k_scores.is_empty():
        return None
    fig = go.Figure(
        go.Scatter(
            x=data.k_scores["k"].to_list(),
            y=data.k_scores["silhouette"].to_list(),
            mode="lines+markers",
            hovertemplate="k=%{x}: silhouette %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="k", dtick=1)
    fig.update_yaxes(title="silhouette (sample)")
    return _layout(fig, "Choosing k: silhouette per k (the best is kept)", 320)


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

    def card(name: str, extra: str = "") -> str:
        return f'<div class="card">{rendered[name]}{extra}</div>' if name in rendered else ""

    body = f"""
<header><h1>{esc(data.title)}</h1>
<p>Behavioural segments, funnel and product interest — generated by ecomscale</p></header>
<main>
<div class="kpis">{kpis}</div>
<div class="grid">{card("sizes")}{card("k")}</div>
<div class="card"><h2>Segments and why they are named so</h2>{segments_table}</div>
{card("profile")}
{card("categories")}
{card("funnel")}
<div class="card"><h2>Revenue and conversion by segment</h2>{revenue_table}</div>
<div class="card"><h2>Session funnel</h2>{session_table}</div>
{card("interest")}
<div class="card"><h2>Most viewed, rarely bought</h2>
<p class="note">Among the top 5% of products by views, the lowest purchases per view.</p>
{not_bought}</div>
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_text(build_report(data), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
