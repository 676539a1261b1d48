"""A small LRU of query embeddings.

Queries repeat: the same message is embedded for the turn's context, for the
extraction's duplicate check and for storing.  Both embedders share this.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

QUERY_CACHE = 512


class QueryCache:
    def __init__(self, size: int = QUERY_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[str, list[float]] = OrderedDict()

    async def get_or_embed(
        self, text: str, embed_batch: Callable[[list[str]], Awaitable[list[list[float]]]]
    ) -> list[float]:
        hit = self._items.get(text)
        if hit is not None:
            self._items.move_to_end(text)
            return hit
        (vec,) = await embed_batch([text])
        self._items[text] = vec
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return vec
