"""Identifier rules shared by every layer (like errors.py: anyone may import it).

User ids become parts of storage keys (Redis keys, file names, outbox entries),
so the rule lives below everything that stores them: Cortex enforces it on
every call, configuration checks USER_ID against the same rule at start.
"""

from __future__ import annotations

import re

#: 1-64 letters, digits or ``. _ @ -``: no separators, no globs, no spaces.
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

#: Width of the vectors the bundled local embedder (all-MiniLM-L6-v2) makes;
#: configuration refuses another CORTEX_EMBEDDING_DIMS for it at load time.
LOCAL_EMBEDDER_DIMS = 384


def is_valid_user_id(user_id: object) -> bool:
    return isinstance(user_id, str) and USER_ID_PATTERN.match(user_id) is not None
