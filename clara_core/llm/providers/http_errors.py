"""SDK exceptions -> Clara's LLM errors, decided by HTTP status (not SDK class).

Both SDKs put ``status_code`` and ``response`` on their status errors, so one
rule serves every wire: 401/403 are the operator's to fix, 408/409/429/5xx
(and errors reported inside a 200 stream) are transient, any other 4xx means
the provider refused this request; anything without a status (connection
drops, timeouts) is transient.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from ..errors import LLMError, ProviderAuthError, ProviderRequestError, ProviderUnavailable

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
