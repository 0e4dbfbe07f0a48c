"""Benchmark tooling: the national landing-folder generator and its cache (not installed)."""
