"""Benchmarks of nst_jax: a PyTorch baseline of the same algorithm and a harness that compares the two."""
