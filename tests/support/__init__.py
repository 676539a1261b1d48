"""Shared test infrastructure: real servers, isolated databases, process helpers."""
