"""A loopback Python package index speaking PEP 503 (the "simple" API pip uses)."""

from .server import FakePackage, FakePackageIndex

__all__ = ["FakePackage", "FakePackageIndex"]
