"""Customer lifetime value (next: BG/NBD, Gamma-Gamma, value).

The place for it: ``rfm`` as a lazy query, the models as NumPy estimators in scikit-learn
style, and one ``stage`` that writes ``OUT/clv/``. Empty until then.
"""
