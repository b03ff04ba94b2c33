"""Conversion and churn prediction (next: labels, point-in-time snapshots, model, evaluation).

The place for it: snapshots as lazy queries over the features engine with ``as_of``, the
model and its evaluation in scikit-learn, one ``stage`` that writes ``OUT/predict/``. Empty
until then.
"""
