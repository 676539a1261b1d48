"""Reading the JSON-answering prompts' answers: the shape asked for, and the common
deviations of models that don't follow it (or of servers without structured output)."""

from __future__ import annotations

import json

import pytest

from clara_core.cortex.consolidation.contradictions import CONTRADICTIONS_ANSWER
from clara_core.cortex.consolidation.patterns import PATTERNS_ANSWER, parse_patterns
from clara_core.cortex.emotion import parse_scores
from clara_core.cortex.extraction import FACTS_ANSWER, parse_facts
from clara_core.cortex.llm_json import json_array, json_items
from clara_core.cortex.types import Memory, MemoryType
from tests.fakes.fake_llm.json_schema import schema_problem, strict_problem

FULL = {
    "content": "Their sister is called Ana",
    "type": "identity",
    "key": "sister",
    "value": "Ana",
    "corrects": None,
    "emotion": 0.3,
}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(json.dumps({"facts": [FULL]}), id="as-asked"),
        pytest.param(json.dumps([FULL]), id="bare-list"),
        pytest.param(json.dumps(FULL), id="one-object-without-list"),
        pytest.param(json.dumps({"facts": FULL}), id="one-object-instead-of-list"),
        pytest.param(f"```json\n{json.dumps({'facts': [FULL]})}\n```", id="fenced"),
        pytest.param(f"Here you go: {json.dumps({'facts': [FULL]})} Hope it helps!", id="prose"),
    ],
)
def test_facts_in_the_asked_shape_and_its_deviations(answer):
    (fact,) = parse_facts(answer)
    assert (fact.content, fact.memory_type, fact.key, fact.value) == (
        "Their sister is called Ana",
        MemoryType.IDENTITY,
        "sister",
        "Ana",
    )


def test_plain_string_facts_are_kept():
    facts = parse_facts('{"facts": ["Their dog is called Rex", "  ", 42, "Likes tea"]}')
    assert [(f.content, f.memory_type) for f in facts] == [
        ("Their dog is called Rex", MemoryType.SEMANTIC),
        ("Likes tea", MemoryType.SEMANTIC),
    ]
    (only,) = parse_facts('{"facts": "Lives in Porto"}')
    assert only.content == "Lives in Porto"


def test_fact_fields_are_read_leniently():
    (fact,) = parse_facts(
        '{"facts": [{"fact": "Plays chess", "type": "Semantic", "emotion": "0.4"}]}'
    )
    assert (fact.content, fact.memory_type, fact.emotion) == (
        "Plays chess",
        MemoryType.SEMANTIC,
        0.4,
    )


@pytest.mark.parametrize("answer", ['{"facts": []}', '{"facts": null}', "[]"])
def test_nothing_to_remember(answer):
    assert parse_facts(answer) == []
    assert json_items(answer, field="facts") == []


@pytest.mark.parametrize("answer", ["no idea", '{"facts": [', '{"name": "x"}', "42"])
def test_unreadable_answers_read_as_nothing(answer):
    assert parse_facts(answer) == []
    assert json_items(answer, field="facts", item_fields=frozenset({"content"})) is None


def test_consolidation_answers_accept_one_object_without_its_list():
    memories = [Memory(f"m{i}", "u") for i in range(3)]
    (pattern,) = parse_patterns(
        '{"category": "identity", "fact": "is a nurse", "confidence": 0.9, "evidence": [1]}',
        memories,
    )
    assert pattern.fact == "is a nurse" and pattern.evidence == [memories[1].id]
    assert json_array('{"a": 0, "b": 1, "reason": "r"}', item_fields=frozenset({"a", "b"})) == [
        {"a": 0, "b": 1, "reason": "r"}
    ]
    assert json_array('{"contradictions": []}', field="contradictions") == []


@pytest.mark.parametrize(
    ("answer", "count", "expected"),
    [
        ("[0.1, 0.8]", 2, [0.1, 0.8]),
        ('{"scores": [0.2, "0.5", 1.7]}', 3, [0.2, 0.5, 1.0]),
        ('[{"item": 2, "score": 0.4}, {"item": 1, "score": 0.1}]', 2, [0.1, 0.4]),
        ('{"score": 0.7}', 1, [0.7]),
        ("```json\n[0.3]\n```", 1, [0.3]),
        ("[0.1]", 2, [None, None]),  # which item? unknowable
        ("1. 0.2\n2. 0.6", 2, [0.2, 0.6]),  # the line format is unchanged
    ],
)
def test_emotion_scores_given_as_json(answer, count, expected):
    assert parse_scores(answer, count) == [
        pytest.approx(v) if v is not None else None for v in expected
    ]


@pytest.mark.parametrize("answer", [FACTS_ANSWER, PATTERNS_ANSWER, CONTRADICTIONS_ANSWER])
def test_answer_schemas_are_valid_strict_schemas(answer):
    """What both wires' structured output accepts: a valid schema, an object root,
    the strict subset (checked by the same rules the fake LLM server applies)."""
    assert answer.schema["type"] == "object"
    assert schema_problem(answer.schema) is None
    assert strict_problem(answer.schema) is None
