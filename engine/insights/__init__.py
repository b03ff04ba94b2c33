"""Insights an analyst takes to a meeting: funnels, category preference, product interest,
revenue by segment, persona agreement. Each a lazy query with a written definition; small
per-user or per-product tables they look up are collected by the stage and passed in."""

from engine.insights.categories import category_preference
from engine.insights.funnel import (
    DEFAULT_CONVERSION_WINDOW,
    first_views,
    funnel,
    session_funnel,
    user_funnel,
)
from engine.insights.personas import persona_agreement
from engine.insights.products import interest_rank_correlation, product_interest, viewed_not_bought
from engine.insights.revenue import revenue_by_segment
from engine.insights.stage import Insights, InsightsConfig, insights_stage

__all__ = [
    "DEFAULT_CONVERSION_WINDOW",
    "Insights",
    "InsightsConfig",
    "category_preference",
    "first_views",
    "funnel",
    "insights_stage",
    "interest_rank_correlation",
    "persona_agreement",
    "product_interest",
    "revenue_by_segment",
    "session_funnel",
    "user_funnel",
    "viewed_not_bought",
]
