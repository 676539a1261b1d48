"""A real S3 wire on loopback: moto's server (``ThreadedMotoServer``) in a thread.

Clients (boto3, the aws CLI, anything speaking S3's REST API) reach it at
``endpoint_url`` with any access key and secret; it keeps buckets and objects in
memory for as long as it runs.  What tests get:

- ``FakeS3.start()`` / ``stop()`` (a free port on 127.0.0.1 each time);
- ``create_bucket``, ``keys``, ``put``, ``client()`` to arrange and inspect;
- ``settings()``: the S3_* environment for Clara pointing at it;
- the ``fake_s3`` fixture (a fresh, empty server per test): import ``fake_s3_fixture``
  into a test module and ask for ``fake_s3``.

An outage is a stopped server: the port then refuses connections, as a real
endpoint that is down does.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

ACCESS_KEY = "fake-s3-access-key"
SECRET_KEY = "fake-s3-secret-key-0123456789"
REGION = "us-east-1"


class FakeS3:
    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> FakeS3:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO: noise in a failing test's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.reset()
        return self

    def reset(self) -> None:
        """Forget every bucket.  moto keeps its state per *process*, not per server:
        without this a test would see the buckets of the one before."""
        request = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            out += [obj["Key"] for obj in page.get("Contents", [])]
        return sorted(out)

    def settings(self, bucket: str) -> dict[str, str]:
        """Clara's S3_* variables for this server (as environment strings)."""
        return {
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_ACCESS_KEY": ACCESS_KEY,
            "S3_SECRET_KEY": SECRET_KEY,
            "S3_REGION": REGION,
        }


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(name="fake_s3")
def fake_s3_fixture() -> Iterator[FakeS3]:
    server = FakeS3().start()
    yield server
    server.stop()
