"""Clearing's adapters: its own tables and the set-based run in SQL (``sql``), the files."""
