"""Retention cohorts and lifecycle (next: issue "Retention cohorts and lifecycle").

The place for them: lazy queries over validated events (cohort = period of a user's first
event; first-time and recurring retention; lifecycle new / returning / resurrecting /
dormant) and one ``stage`` that collects and writes ``OUT/cohorts/*.parquet``. Empty until
then: nothing here is imported by the pipeline.
"""
