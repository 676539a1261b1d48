"""The lexical leg's language (CORTEX_TEXT_SEARCH_CONFIG) on real PostgreSQL: checked
at start against pg_ts_config and the stored column, and `cortex reindex-text`'s
rebuild of the generated column (issue 14)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from clara_core.config.cortex import CortexSettings
from clara_core.cortex import text_search
from clara_core.cortex.manager import MemoryManager
from clara_core.cortex.retrieval import RetrievalConfig
from clara_core.errors import ConfigError
from tests.integration.test_cortex_retrieval import _manager, _random, _store
from tests.support.clara_process import clara_env, run_clara

pytestmark = pytest.mark.storage

AT = datetime(2025, 6, 1, tzinfo=UTC)
#: German stems "Katzen" and "Katze" alike (katz); english leaves "katzen" as it is.
GERMAN = "Ich wohne in Berlin mit meinen drei Katzen"


def _with(redis, engine, tmp_path, config: str, name: str) -> MemoryManager:
    return _manager(redis, engine, tmp_path, RetrievalConfig(text_search_config=config), name)


async def test_an_unknown_configuration_is_a_config_error_naming_the_setting(
    redis, engine, tmp_path
):
    mm = _with(redis, engine, tmp_path, "klingon", "kl")
    with pytest.raises(ConfigError) as caught:
        await mm.initialize(watch=False)
    await mm.close()
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "CORTEX_TEXT_SEARCH_CONFIG='klingon'" in message
    assert "german" in message and "simple" in message  # what the operator may choose


def test_the_setting_only_takes_a_configuration_name():
    assert CortexSettings(cortex_text_search_config="german").cortex_text_search_config == "german"
    with pytest.raises(ValidationError, match="cortex_text_search_config"):
        CortexSettings(cortex_text_search_config="english'); DROP TABLE memories; --")


async def test_changing_the_language_takes_a_reindex_and_then_stems_with_it(
    redis, engine, tmp_path
):
    rng = random.Random(9)
    english = _with(redis, engine, tmp_path, "english", "en")
    await english.initialize(watch=False)
    [memory_id] = await _store(english, "anna", [(GERMAN, _random(rng), AT)])
    # Other memories, so the statistics the rebuild refreshes do not make every word
    # "common" (the lexical leg leaves out words in over 5 % of all memories).
    filler = [(f"Grocery list number {i}: bread, milk", _random(rng), AT) for i in range(60)]
    await _store(english, "anna", filler)
    assert await english.warm.lexical_search("anna", "Katze") == []  # no german stems yet
    await english.close()

    german = _with(redis, engine, tmp_path, "german", "de")
    with pytest.raises(ConfigError, match="cortex reindex-text"):
        await german.initialize(watch=False)
    assert await text_search.stored_config(engine) == "english"

    assert await text_search.reindex(engine, "german") is True
    assert await text_search.stored_config(engine) == "german"
    assert await text_search.reindex(engine, "german") is False  # nothing left to do
    await german.initialize(watch=False)
    try:
        assert [m.id for m in await german.warm.lexical_search("anna", "Katze")] == [memory_id]
        # The public search finds both by their words alone (the vectors are random,
        # 60 others compete): the question is parsed with german as well, and a memory
        # stored after the rebuild is indexed with german too.
        [later] = await _store(german, "anna", [("Die Katze schläft im Garten", _random(rng), AT)])
        found = await german.search("anna", "Wo schlafen die Katzen?", limit=5,
                                    query_embedding=_random(rng))  # fmt: skip
        assert {memory_id, later} <= {m.id for m in found.memories}
    finally:
        await german.close()

    # Back to english without a rebuild: refused again, naming the fix.
    again = _with(redis, engine, tmp_path, "english", "en2")
    with pytest.raises(ConfigError, match="CORTEX_TEXT_SEARCH_CONFIG=german"):
        await again.initialize(watch=False)
    await again.close()


@pytest.mark.slow
async def test_the_reindex_command_as_an_operator_runs_it(tmp_path):
    """`discord_bot.py cortex reindex-text` as a real process on an embedded data
    directory: an unknown language exits 2 naming the setting, a known one rebuilds
    the column once."""

    async def clara(config: str, *args: str):
        env = clara_env(tmp_path, CORTEX_TEXT_SEARCH_CONFIG=config)
        return await asyncio.to_thread(run_clara, "cortex", *args, env=env, cwd=tmp_path)

    wrong = await clara("klingon", "reindex-text")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "CORTEX_TEXT_SEARCH_CONFIG='klingon'" in wrong.stderr

    done = await clara("german", "reindex-text")
    assert done.returncode == 0, done.stderr
    assert "keyword index rebuilt: english → german" in done.stdout
    again = await clara("german", "reindex-text")
    assert again.returncode == 0 and "already uses german" in again.stdout
