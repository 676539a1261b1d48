"""A loopback GitHub REST API with its real pagination, rate limits and error bodies."""

from .server import (
    SECONDARY_MESSAGE,
    SUPPORTED_VERSIONS,
    FakeGitHub,
    FakeRepo,
    RecordedRequest,
    user_obj,
)

__all__ = [
    "SECONDARY_MESSAGE",
    "SUPPORTED_VERSIONS",
    "FakeGitHub",
    "FakeRepo",
    "RecordedRequest",
    "user_obj",
]
