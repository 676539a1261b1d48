"""The self-hosted sandbox service: the local backends behind an HTTP API.

Run with ``python -m sandbox.service`` (see docs/sandbox.md); Clara talks to
it with ``sandbox.remote.RemoteBackend`` (SANDBOX_MODE=remote).
"""

from .app import create_app, start_service

__all__ = ["create_app", "start_service"]
