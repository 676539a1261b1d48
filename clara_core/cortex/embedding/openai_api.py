"""OpenAI's embeddings API (or any server speaking its wire) through the official SDK.

Why the choices below:

* Requests carry at most ``chunk_size`` inputs (default 512; the API allows 2048)
  and roughly ``MAX_REQUEST_CHARS`` of text, so one request stays well under the
  API's 300k-token-per-request cap and a failure costs little to retry.  Chunks go
  out one after another: embedding is background work and must not eat the
  account's rate limit that the chat models share.
* Results are put back in order by each item's ``index``, not by position: the API
  documents ``index`` as the link between input and output.
* Every vector is checked against ``dims`` (a server that ignores ``dimensions``
  would otherwise poison the pgvector column) and L2-normalised, so cosine
  distance is a dot product like with the local embedder.
* The SDK retries connection errors, 408/409/429 and 5xx itself (``max_retries``);
  whatever still fails becomes :class:`EmbeddingError` with a plain message that
  never contains the API key.
"""

from __future__ import annotations

import base64
import logging
import math
import struct
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from clara_core.errors import ConfigError

from .cache import QueryCache
from .errors import EmbeddingError

if TYPE_CHECKING:
    from clara_core.config import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "text-embedding-3-small"
#: The API accepts 2048 inputs per request; 512 keeps bodies and retries small.
CHUNK = 512
MAX_INPUTS = 2048
#: Characters of text per request (~100-150k tokens): under the 300k-token cap.
MAX_REQUEST_CHARS = 500_000
#: One input may be 8192 tokens; 6000 characters stays under that even for scripts
#: that tokenise densely.  A memory that long is embedded by its beginning, which is
#: better than failing its whole batch with a 400.
MAX_INPUT_CHARS = 6000
#: Models that reject the ``dimensions`` parameter (they only make their native size).
_NO_DIMENSIONS = frozenset({"text-embedding-ada-002"})


class OpenAIEmbedder:
    """``Embedder`` over ``POST /embeddings``.

    ``chunk_size``: inputs per request (1..2048).  ``max_retries``: the SDK's own
    retries of transient failures (connection, 408/409/429, 5xx).
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        dims: int = 1536,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 30.0,
        chunk_size: int = CHUNK,
    ) -> None:
        if not api_key:
            raise ConfigError(
                ["CORTEX_EMBEDDING_API_KEY is empty; CORTEX_EMBEDDING_PROVIDER=openai needs it"]
            )
        if not 1 <= chunk_size <= MAX_INPUTS:
            raise ValueError(f"chunk_size must be between 1 and {MAX_INPUTS}")
        self.model_id = model
        self.dims = dims
        self.chunk_size = chunk_size
        self._secret = api_key
        self._base_url = base_url
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=httpx2.Timeout(timeout, connect=10.0),
            # Same transport as the chat providers (clara_core/llm/providers): aiohttp's
            # C parser, and one connection pool per process rather than two stacks.
            http_client=openai.DefaultAioHttpClient(),
        )
        self._cache = QueryCache()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        key = settings.cortex_embedding_api_key
        secret = key.get_secret_value() if key is not None else ""
        if not secret:
            raise ConfigError(
                [
                    "CORTEX_EMBEDDING_API_KEY is not set; CORTEX_EMBEDDING_PROVIDER=openai needs "
                    "it (or use CORTEX_EMBEDDING_PROVIDER=local, which needs no key)"
                ]
            )
        return cls(
            api_key=secret,
            model=settings.cortex_embedding_model or DEFAULT_MODEL,
            dims=settings.cortex_embedding_dims,
            base_url=settings.cortex_embedding_base_url,
        )

    # ------------------------------------------------------------ Embedder

    async def embed(self, text: str) -> list[float]:
        return await self._cache.get_or_embed(text, self.embed_batch)

    async def embed_batch(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for chunk in self._chunks([_clean(t) for t in texts]):
            out.extend(await self._request(chunk))
        return out

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------ internals

    def _chunks(self, texts: list[str]) -> list[list[str]]:
        chunks: list[list[str]] = []
        current: list[str] = []
        chars = 0
        for text in texts:
            if current and (
                len(current) >= self.chunk_size or chars + len(text) > MAX_REQUEST_CHARS
            ):
                chunks.append(current)
                current, chars = [], 0
            current.append(text)
            chars += len(text)
        if current:
            chunks.append(current)
        return chunks

    async def _request(self, texts: list[str]) -> list[list[float]]:
        params: dict[str, Any] = {
            "model": self.model_id,
            "input": texts,
            "encoding_format": "float",
        }
        if self.model_id not in _NO_DIMENSIONS:
            params["dimensions"] = self.dims
        try:
            response = await self._client.embeddings.create(**params)
        except (openai.OpenAIError, httpx2.TransportError) as exc:
            raise EmbeddingError(self._describe(exc)) from exc
        vectors: list[list[float] | None] = [None] * len(texts)
        for item in response.data:
            if not 0 <= item.index < len(texts) or vectors[item.index] is not None:
                raise EmbeddingError(
                    f"the embeddings endpoint answered item index {item.index} for a request "
                    f"of {len(texts)} inputs"
                )
            vectors[item.index] = self._check(_as_floats(item.embedding))
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            raise EmbeddingError(
                f"the embeddings endpoint returned {len(texts) - len(missing)} vectors "
                f"for {len(texts)} inputs"
            )
        return [v for v in vectors if v is not None]

    def _check(self, vec: list[float]) -> list[float]:
        if len(vec) != self.dims:
            raise EmbeddingError(
                f"the embeddings endpoint returned {len(vec)}-dimensional vectors for model "
                f"{self.model_id!r}, but CORTEX_EMBEDDING_DIMS={self.dims}: set "
                f"CORTEX_EMBEDDING_DIMS={len(vec)} or use a model that supports 'dimensions'"
            )
        norm = math.hypot(*vec)
        if not math.isfinite(norm) or norm == 0.0:
            raise EmbeddingError(
                f"the embeddings endpoint returned an unusable vector (norm {norm}) "
                f"for model {self.model_id!r}"
            )
        return [x / norm for x in vec]

    def _describe(self, exc: BaseException) -> str:
        """A message for operators: what failed and what to check, never the key."""
        where = self._base_url or "the OpenAI API"
        status = getattr(exc, "status_code", None)
        if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
            # APITimeoutError included: with the aiohttp transport a refused connection
            # surfaces as a ConnectTimeout, so the cause says more than the class.
            cause = exc.__cause__ or exc
            detail = str(cause) or type(cause).__name__
            text = f"could not reach the embeddings endpoint at {where}: {detail}"
        elif status in (401, 403):
            text = (
                f"the embeddings endpoint at {where} refused the API key (HTTP {status}); "
                "check CORTEX_EMBEDDING_API_KEY"
            )
        elif status is not None:
            text = f"embeddings request failed with HTTP {status}: {_api_message(exc)}"
        else:
            text = f"embeddings request failed: {type(exc).__name__}: {exc}"
        # The SDK's messages carry the server's words; a misbehaving server could echo
        # the key back.  Never let it through.
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _clean(text: str) -> str:
    # The API rejects empty strings in a batch with a 400 for the whole request.
    text = text[:MAX_INPUT_CHARS]
    return text if text.strip() else " "


def _as_floats(embedding: Any) -> list[float]:
    """Floats from ``encoding_format="float"``, or base64 from servers that send it anyway."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(x) for x in embedding]


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    return getattr(exc, "message", None) or str(exc)
