"""Persistence: SQLite or PostgreSQL behind one interface; the request log and its kin."""
