"""Benchmarks: `make bench` runs `python -m bench` and prints figures. Not tests."""
