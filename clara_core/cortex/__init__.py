"""Cortex: Clara's tiered memory (Redis hot tier, PostgreSQL/pgvector warm tier).

Only ``hot.py`` (and, later, the warm store) import redis / SQLAlchemy; the
rest works on the types in ``types.py``.
"""
