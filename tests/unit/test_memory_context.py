"""MemoryContext.to_prompt_string: each memory appears once, whatever sections hold it."""

from __future__ import annotations

from datetime import UTC, datetime

from clara_core.cortex.types import Memory, MemoryContext, MemoryType, ProjectContext

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def _m(content: str, **kw) -> Memory:
    return Memory(content=content, user_id="alice", created_at=WHEN, **kw)


def _lines(prompt: str, text: str) -> list[str]:
    return [line for line in prompt.splitlines() if text in line]


def test_a_recent_and_relevant_memory_is_shown_once_under_relevant_memories():
    cat = _m("I adopted a grey cat called Miso")
    toast = _m("Had toast for breakfast")
    ctx = MemoryContext(user_id="alice", working=[cat, toast], retrieved=[cat])
    prompt = ctx.to_prompt_string()
    assert _lines(prompt, "Miso") == ["- [2026-03-01] I adopted a grey cat called Miso"]
    recent = prompt.split("## Recent context")[1].split("## Relevant memories")[0]
    assert "toast" in recent and "Miso" not in recent


def test_the_same_text_under_two_ids_and_project_memories_are_not_repeated():
    retrieved = _m("The release is planned for March 3rd")
    twin = _m("The release  is planned for march 3rd")  # same fact, stored twice
    project = ProjectContext(
        project_id="p", name="Cortex", recent=[retrieved, _m("Stand-ups are at 10")]
    )
    ctx = MemoryContext(user_id="alice", working=[twin], retrieved=[retrieved], project=project)
    prompt = ctx.to_prompt_string()
    assert len(_lines(prompt.casefold(), "march 3rd")) == 1
    assert "## Recent context" not in prompt  # nothing left to show there
    assert prompt.endswith("## Shared project: Cortex\n- Stand-ups are at 10")


def test_identity_facts_are_not_repeated_as_memories_but_old_values_are_kept():
    name = _m(
        "name: Ana",
        memory_type=MemoryType.IDENTITY,
        metadata={"identity_key": "name", "value": "Ana"},
    )
    old_city = _m(
        "city: Porto",
        memory_type=MemoryType.IDENTITY,
        metadata={"identity_key": "city", "value": "Porto"},
    )
    ctx = MemoryContext(
        user_id="alice", identity={"name": "Ana", "city": "Lisbon"}, retrieved=[name, old_city]
    )
    prompt = ctx.to_prompt_string()
    assert _lines(prompt, "Ana") == ["- name: Ana"]
    assert "- [2026-03-01] city: Porto" in prompt  # not what the identity section says


def test_limits_count_shown_memories_only():
    shared = [_m(f"fact {i}") for i in range(3)]
    ctx = MemoryContext(
        user_id="alice", working=[*shared, _m("fact 3"), _m("fact 4")], retrieved=shared
    )
    prompt = ctx.to_prompt_string(max_working=2, max_retrieved=2)
    relevant = prompt.split("## Relevant memories")[1]
    assert _lines(relevant, "fact") == ["- [2026-03-01] fact 0", "- [2026-03-01] fact 1"]
    recent = prompt.split("## Recent context")[1].split("##")[0]
    # "fact 2" was not shown under Relevant memories (over the limit), so it is recent context.
    assert _lines(recent, "fact") == ["- fact 2", "- fact 3"]
