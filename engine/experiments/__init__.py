"""Experiment analysis (a later round: assignment and SRM, metrics, CUPED, statistics).
Empty until then."""
