"""Validation: the row rules of the dataset contract and the policies that apply them."""

from engine.validation.policy import (
    POLICIES,
    Policy,
    RuleScan,
    ValidationReport,
    merge_reports,
    parse_policy,
    scan_rules,
    validate_events,
)
from engine.validation.rules import RULES, WHOLE_INPUT_RULES, breaks_any_rule, clean_check

__all__ = [
    "POLICIES",
    "RULES",
    "WHOLE_INPUT_RULES",
    "Policy",
    "RuleScan",
    "ValidationReport",
    "breaks_any_rule",
    "clean_check",
    "merge_reports",
    "parse_policy",
    "scan_rules",
    "validate_events",
]
