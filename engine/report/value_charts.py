"""The report's customer-value charts (engine.clv's outputs): value by segment, the holdout
check, and P(alive) over frequency and recency."""

from __future__ import annotations

import plotly.graph_objects as go

from engine.report.charts import PALETTE, _layout, esc
from engine.report.data import ReportData


def chart_clv_segments(data: ReportData) -> go.Figure | None:
    """Expected value per segment over the horizon, with customers and mean P(alive)."""
    table = data.clv_by_segment
    if table is None or table.is_empty():
        return None
    fig = go.Figure(
        go.Bar(
            x=[esc(n) for n in table["segment_name"].to_list()],
            y=table["clv"].to_list(),
            customdata=list(
                zip(
                    table["customers"].to_list(),
                    table["p_alive"].to_list(),
                    table["clv_per_customer"].to_list(),
                    strict=True,
                )
            ),
            marker_color=PALETTE[0],
            hovertemplate="%{x}<br>value %{y:,.0f}<br>%{customdata[0]:,} customers, "
            "%{customdata[2]:,.2f} each<br>mean P(alive) %{customdata[1]:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(title="expected value (BG/NBD x Gamma-Gamma)")
    return _layout(fig, "Customer value by segment")


def chart_clv_holdout(data: ReportData) -> go.Figure | None:
    """Predicted against actual purchases per customer, by calibration frequency."""
    table = data.clv_holdout
    if table is None or table.is_empty():
        return None
    labels = table["label"].to_list()
    fig = go.Figure()
    for name, column, colour in (
        ("predicted", "predicted", PALETTE[0]),
        ("actual", "actual", PALETTE[2]),
    ):
        fig.add_bar(
            name=name,
            x=labels,
            y=table[column].to_list(),
            marker_color=colour,
            hovertemplate=f"{name}: %{{y:.2f}} purchases per customer<extra>%{{x}} repeat</extra>",
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="repeat purchase days in the calibration window")
    fig.update_yaxes(title="purchase days per customer in the holdout")
    return _layout(fig, "Does the BG/NBD predict the holdout? Predicted vs actual purchases")


def chart_alive(data: ReportData) -> go.Figure | None:
    """P(alive) for a customer of the longest age, by frequency and recency."""
    table = data.clv_alive
    if table is None or table.is_empty():
        return None
    grid = table.sort("recency", "frequency")
    frequencies = sorted(set(grid["frequency"].to_list()))
    recencies = sorted(set(grid["recency"].to_list()))
    z = grid["p_alive"].to_numpy().reshape(len(recencies), len(frequencies))
    fig = go.Figure(
        go.Heatmap(
            x=frequencies,
            y=[round(r, 1) for r in recencies],
            z=z,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            hovertemplate="%{x:.0f} repeat days, last on day %{y}: P(alive) %{z:.2f}"
            "<extra></extra>",
        )
    )
    fig.update_xaxes(title="repeat purchase days (frequency)")
    fig.update_yaxes(title="days from first to last purchase (recency)")
    return _layout(fig, "P(alive) by frequency and recency (oldest customers)")
