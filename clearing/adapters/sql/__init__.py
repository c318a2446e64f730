"""Clearing in the host's database: its own tables (``schema``), its own Alembic environment
(version table ``clearing_alembic_version``), and the run's stages as INSERT ... SELECT."""
