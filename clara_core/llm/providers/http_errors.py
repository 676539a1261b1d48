"""SDK and transport exceptions -> Clara's LLM errors, decided by HTTP status (not class).

Both SDKs put ``status_code`` and ``response`` on their status errors, so one
rule serves every wire: 401/403 are the operator's to fix, 408/409/429/5xx
(and errors reported inside a 200 stream) are transient, any other 4xx means
the provider refused this request; anything without a status (connection
drops, timeouts, a body cut short) is transient.

Which exception class a dropped connection arrives as depends on the SDK
release: anthropic-python up to 2.10 let the transport's own error
(``httpx2.RemoteProtocolError``/``ReadError``/``ReadTimeout``) escape a
stream's iterator, 2.17 wraps it in ``APIConnectionError``; the raw HTTP
response Clara streams from raises the transport's errors either way, and
the transport underneath (aiohttp) may surface its own.  ``PROVIDER_FAILURES``
names all of them, so every path maps a failure the same way whichever side
of such a change the installed SDK is on.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import aiohttp
import httpx2

from ..errors import LLMError, ProviderAuthError, ProviderRequestError, ProviderUnavailable

#: Transport-level failures that may escape an SDK unwrapped: connection drops,
#: read timeouts, cut or undecodable bodies (httpx2's ``RequestError`` family,
#: aiohttp's ``ClientError`` family, and a bare timeout).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.RequestError,
    aiohttp.ClientError,
    TimeoutError,
)


def provider_failures(sdk_error: type[BaseException]) -> tuple[type[BaseException], ...]:
    """Everything a call through an SDK may raise for a provider-side failure."""
    return (sdk_error, *TRANSPORT_ERRORS)


_TRANSIENT_4XX = {408, 409, 429}


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


def translate_error(exc: BaseException, provider: str) -> LLMError:
    """Map an SDK error, or a raw transport error, to Clara's error for it."""
    status = getattr(exc, "status_code", None)
    message = f"{provider}: {type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    cls: type[LLMError]
    if status in (401, 403):
        cls = ProviderAuthError
    elif status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
        cls = ProviderRequestError
    else:
        cls = ProviderUnavailable
    response = getattr(exc, "response", None)
    retry_after = retry_after_seconds(response.headers) if response is not None else None
    return cls(message, provider=provider, status=status, retry_after=retry_after)
