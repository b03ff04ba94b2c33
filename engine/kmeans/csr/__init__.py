"""Numba kernels for K-Means on sparse (CSR) rows; ``engine.kmeans.rows`` dispatches to them."""
