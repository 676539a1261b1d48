"""A loopback Tavily search API (``POST /search``) with its real JSON and errors."""

from .server import MESSAGES, FakeResult, FakeTavily, RecordedSearch

__all__ = ["MESSAGES", "FakeResult", "FakeTavily", "RecordedSearch"]
