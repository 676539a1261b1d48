"""LLM errors, by who can act on them. Each carries a plain ``user_message``."""

from __future__ import annotations

from clara_core.errors import ClaraError


class LLMError(ClaraError):
    """Root of the LLM layer's errors."""

    user_message = "I couldn't get an answer from my language model just now."

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after  # seconds the provider asked us to wait


class ProviderUnavailable(LLMError):
    """Transient: rate limits, 5xx, timeouts, connection drops (after retries)."""

    user_message = (
        "My language model isn't answering right now (it's overloaded or unreachable). "
        "Please try again in a minute."
    )


class ProviderAuthError(LLMError):
    """The operator must fix a key or permission."""

    user_message = (
        "My language model rejected my credentials. The operator needs to check the API key."
    )


class ProviderRequestError(LLMError):
    """The provider refused the request itself (too long, invalid)."""

    user_message = (
        "My language model refused that request (it may be too long). "
        "Try a shorter message or start a new conversation."
    )


class StreamInterrupted(ProviderUnavailable):
    """The connection broke after output had already been streamed."""

    user_message = "My connection to the language model broke off mid-answer. Please ask again."
