"""The /clara speech choices in PostgreSQL (issue 13): stored through ``Preferences``,
cached by the Discord adapter's ``SpeechChoices``, surviving a restart (a second
engine and cache on the same database), cleared by a user's deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from clara_core.discord_adapter.voice_channels import SpeechChoices
from storage import migrations
from storage.db import create_engine
from storage.embedded import EmbeddedPostgres
from storage.models import GuildSettings
from storage.preferences import Preferences, PreferencesUnavailable
from storage.user_data import delete_user_data_in

pytestmark = pytest.mark.storage

GUILD = 555
ALICE, BOB = 101, 202


async def test_choices_survive_a_restart_and_default_removes_them(database_url):
    first = create_engine(database_url, pool_size=1)
    try:
        before = SpeechChoices(lambda: Preferences(first))
        await Preferences(first).set_default_tier(str(ALICE), "high")  # an existing row
        assert await before.set_user(ALICE, False) is True
        assert await before.set_user(BOB, True) is True
        assert await before.set_guild(GUILD, False) is True
    finally:
        await first.dispose()

    # "Restart": a new engine and an empty cache on the same database.
    second = create_engine(database_url, pool_size=1)
    try:
        prefs = Preferences(second)
        after = SpeechChoices(lambda: prefs)
        assert after.known(GUILD, ALICE) is None  # nothing cached yet
        await after.load(GUILD, [ALICE, BOB, 303])
        assert after.users == {ALICE: False, BOB: True, 303: None}
        assert after.guilds == {GUILD: False}
        # The user's choice first, then the server's; someone who never chose: the server's.
        assert after.known(GUILD, ALICE) is False and after.known(GUILD, BOB) is True
        assert after.known(GUILD, 303) is False
        assert await prefs.default_tier(str(ALICE)) == "high"  # the tier was left alone

        # "default" removes a choice: the server's row goes, alice's column is NULL.
        assert await after.set_guild(GUILD, None) is True
        assert await after.set_user(ALICE, None) is True
        assert await prefs.guild_speak_replies(str(GUILD)) is None
        assert await prefs.speak_replies([str(ALICE), str(BOB)]) == {str(BOB): True}
        async with second.connect() as conn:
            assert (await conn.execute(select(GuildSettings))).all() == []
        # With nobody choosing, she speaks (she is in the channel because she was asked).
        assert after.known(GUILD, ALICE) is True
    finally:
        await second.dispose()


async def test_deleting_a_users_data_clears_their_stored_and_cached_choice(engine):
    prefs = Preferences(engine)
    choices = SpeechChoices(lambda: prefs)
    await choices.set_user(ALICE, False)
    await choices.set_user(BOB, False)
    await choices.set_guild(GUILD, True)

    # What /clara forget runs: the core tables, then every further store (this cache).
    counts = await delete_user_data_in(engine, str(ALICE))
    await choices.delete_user_data(str(ALICE))
    assert counts.preferences == 1
    assert await prefs.speak_replies([str(ALICE), str(BOB)]) == {str(BOB): False}
    assert ALICE not in choices.users
    assert await choices.decide(GUILD, ALICE) is True  # back to the server's choice
    assert choices.known(GUILD, BOB) is False  # nobody else's choice is touched
    assert await prefs.guild_speak_replies(str(GUILD)) is True


@pytest.fixture
async def own_postgres(tmp_path: Path):
    """A PostgreSQL of this test's own, so stopping it touches nothing else."""
    server = EmbeddedPostgres(tmp_path / "pgdata")
    engine = create_engine(await server.start(), pool_size=1)
    await migrations.upgrade(engine)
    try:
        yield server, engine
    finally:
        await engine.dispose()
        await server.stop()


async def test_with_postgres_down_a_choice_applies_in_memory_and_reads_back_off(own_postgres):
    server, engine = own_postgres
    prefs = Preferences(engine)
    choices = SpeechChoices(lambda: prefs)
    assert await choices.set_user(ALICE, True) is True  # saved: a pooled connection exists
    await server.stop()

    with pytest.raises(PreferencesUnavailable):
        await prefs.speak_replies([str(BOB)])
    assert await choices.set_user(ALICE, False) is False  # not saved ...
    assert await choices.decide(GUILD, ALICE) is False  # ... but it applies for this run
    # Someone whose choice can't be read counts as not having chosen.
    assert await choices.decide(GUILD, BOB) is True
    assert BOB not in choices.users  # not cached: read again once PostgreSQL is back
