"""Servers hosted on Smithery (https://smithery.ai): find one's MCP endpoint.

``mcp_install source=smithery package=<qualifiedName>`` asks the registry
(``GET {SMITHERY_API_URL}/servers/{qualifiedName}``, bearer SMITHERY_API_KEY)
for the server's streamable-HTTP connection and stores that URL; nothing is
downloaded or run on Clara's host.  Per Smithery's connection docs, a server's
configuration goes along with each request: secrets (API keys) as headers,
other values as query parameters, so ``package`` may carry a query
(``owner/server?projectId=x``) and mcp_install's ``env`` becomes the headers
(stored encrypted like every header).  The Smithery key itself is not stored:
the supervisor adds it as ``Authorization: Bearer`` when it connects, so
changing SMITHERY_API_KEY needs no reinstall.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .config import McpConfigError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.smithery.ai"


class SmitheryError(McpConfigError):
    """A Smithery lookup failed; the message says what to do."""


def split_package(package: str) -> tuple[str, str]:
    """``@owner/server?x=1`` → (``owner/server``, ``x=1``): the name and its query."""
    name, _, query = package.strip().partition("?")
    name = name.strip().strip("/")
    for prefix in ("https://smithery.ai/server/", "smithery.ai/server/"):
        name = name.removeprefix(prefix)
    return name.removeprefix("@"), query


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def lookup(package: str, *, api_url: str, api_key: str | None, timeout: float = 30.0) -> str:
    """The MCP URL of a hosted server (with the package's query parameters)."""
    if not api_key:
        raise SmitheryError(
            "installing from Smithery needs SMITHERY_API_KEY (create one at "
            "https://smithery.ai/account/api-keys), then restart Clara"
        )
    name, query = split_package(package)
    if not name:
        raise SmitheryError("say which Smithery server, e.g. exa or owner/server")
    url = f"{api_url.rstrip('/')}/servers/{quote(name, safe='')}"
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            resp = await http.get(
                url, headers={**auth_headers(api_key), "Accept": "application/json"}
            )
    except httpx.HTTPError as exc:
        raise SmitheryError(
            f"could not reach Smithery at {api_url} ({type(exc).__name__}); try again later"
        ) from None
    if resp.status_code in (401, 403):
        raise SmitheryError("Smithery refused SMITHERY_API_KEY: check that the key is valid")
    if resp.status_code == 404:
        raise SmitheryError(f"Smithery has no server named {name!r}")
    if resp.status_code != 200:
        raise SmitheryError(f"Smithery answered {resp.status_code}; try again later")
    try:
        info = resp.json()
    except ValueError:
        raise SmitheryError("Smithery's answer was not JSON; try again later") from None
    endpoint = _http_endpoint(info)
    if endpoint is None:
        raise SmitheryError(
            f"{name} is not hosted on Smithery (it only runs locally): install it from its "
            "npm/PyPI package or repository instead"
        )
    return _with_query(endpoint, query)


def _http_endpoint(info: object) -> str | None:
    if not isinstance(info, dict):
        return None
    for conn in info.get("connections") or []:
        if isinstance(conn, dict) and conn.get("type") == "http":
            url = conn.get("deploymentUrl") or conn.get("url")
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
    base = info.get("deploymentUrl")
    if info.get("remote") and isinstance(base, str) and base.startswith(("https://", "http://")):
        return base.rstrip("/") + "/mcp"
    return None


def _with_query(url: str, query: str) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    joined = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit(parts._replace(query=joined))
