"""Adapters of the POS terminal: readers."""
