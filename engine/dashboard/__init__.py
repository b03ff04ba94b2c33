"""The dashboard (a later round: a Streamlit app over a run's outputs, behind an extra).
Like the report, it reads outputs and never computes. Empty until then."""
