"""The report's prediction charts (engine.predict's outputs): the score distribution by
segment, the calibration curve, the lift chart and the top features."""

from __future__ import annotations

import plotly.graph_objects as go

from engine.report.charts import PALETTE, _layout, esc
from engine.report.data import ReportData


def _target(data: ReportData) -> str:
    return esc(data.predict_target or "outcome")


def chart_scores_by_segment(data: ReportData) -> go.Figure | None:
    """Box plot per segment from the 10/25/50/75/90th score percentiles."""
    table = data.predict_by_segment
    if table is None or table.is_empty():
        return None
    fig = go.Figure()
    for i, row in enumerate(table.iter_rows(named=True)):
        name = esc(row["segment_name"])
        fig.add_trace(
            go.Box(
                name=name,
                x=[name],  # precomputed quartiles: one box per trace, placed by its x
                q1=[row["p25"]],
                median=[row["p50"]],
                q3=[row["p75"]],
                lowerfence=[row["p10"]],
                upperfence=[row["p90"]],
                mean=[row["mean"]],
                marker_color=PALETTE[i % len(PALETTE)],
                hoverinfo="y+name",
            )
        )
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title=f"P({_target(data)})")
    return _layout(
        fig, f"Who is likely: {_target(data)} scores by segment (whiskers: 10th-90th percentile)"
    )


def chart_calibration(data: ReportData) -> go.Figure | None:
    """Observed rate against mean predicted probability per score decile, on the diagonal."""
    table = data.predict_calibration
    if table is None or table.is_empty():
        return None
    top = max(table["predicted"].max(), table["observed"].max())  # type: ignore[type-var]
    fig = go.Figure(
        [
            go.Scatter(
                x=[0, top],
                y=[0, top],
                mode="lines",
                line={"dash": "dot", "color": "#94a3b8"},
                name="perfect",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=table["predicted"].to_list(),
                y=table["observed"].to_list(),
                customdata=table["users"].to_list(),
                mode="lines+markers",
                marker_color=PALETTE[0],
                name="model",
                hovertemplate="predicted %{x:.3f}<br>observed %{y:.3f}<br>%{customdata:,} "
                "users<extra></extra>",
            ),
        ]
    )
    fig.update_xaxes(title="mean predicted probability (score decile)")
    fig.update_yaxes(title=f"observed {_target(data)} rate after the cutoff")
    return _layout(fig, "Are the probabilities honest? Calibration on the held-out period")


def chart_lift(data: ReportData) -> go.Figure | None:
    """Share of all positives captured when targeting the top 10%, 20%, ... by score."""
    table = data.predict_lift
    if table is None or table.is_empty():
        return None
    shares = [0.0, *table["top_share"].to_list()]
    fig = go.Figure(
        [
            go.Scatter(
                x=shares,
                y=shares,
                mode="lines",
                line={"dash": "dot", "color": "#94a3b8"},
                name="random",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=shares,
                y=[0.0, *table["captured"].to_list()],
                customdata=[None, *table["lift"].to_list()],
                mode="lines+markers",
                marker_color=PALETTE[2],
                name="model",
                hovertemplate="top %{x:.0%}: %{y:.0%} of all positives (lift %{customdata:.1f})"
                "<extra></extra>",
            ),
        ]
    )
    fig.update_xaxes(title="share of users targeted, highest scores first", tickformat=".0%")
    fig.update_yaxes(title=f"share of {_target(data)} captured", tickformat=".0%")
    return _layout(fig, "Lift: whom to target first")


def chart_importance(data: ReportData) -> go.Figure | None:
    """Permutation importance (drop in ROC AUC when a feature is shuffled)."""
    table = data.predict_importance
    if table is None or table.is_empty():
        return None
    ordered = table.reverse()
    fig = go.Figure(
        go.Bar(
            x=ordered["importance"].to_list(),
            y=[esc(f) for f in ordered["feature"].to_list()],
            error_x={"type": "data", "array": ordered["std"].to_list()},
            orientation="h",
            marker_color=PALETTE[4],
            hovertemplate="%{y}: ROC AUC drops %{x:.4f} when shuffled<extra></extra>",
        )
    )
    fig.update_xaxes(title="drop in ROC AUC when the feature is shuffled")
    return _layout(fig, f"What drives the {_target(data)} score", height=460)
