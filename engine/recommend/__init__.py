"""Recommendations (a later round: co-visitation, evaluation). Empty until then."""
