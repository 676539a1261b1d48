"""Retry timing, capabilities, message conversion, tool-call argument parsing."""

from __future__ import annotations

import json
import random

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from clara_core.config import load_settings
from clara_core.llm.errors import ProviderUnavailable
from clara_core.llm.models import DEFAULT, capabilities_for
from clara_core.llm.providers.anthropic_messages import (
    AnthropicMessagesProvider,
    to_anthropic_messages,
)
from clara_core.llm.providers.base import Endpoint
from clara_core.llm.providers.http_errors import translate_error
from clara_core.llm.providers.openai_chat import OpenAIChatProvider, to_openai_messages
from clara_core.llm.registry import wire_class
from clara_core.llm.retry import RetryPolicy
from clara_core.llm.service import ChatRequest, LLMService
from clara_core.llm.types import (
    CompletionRequest,
    ImagePart,
    Message,
    OutputSchema,
    TextPart,
    ToolCall,
)


def test_backoff_grows_with_jitter_and_gives_up():
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=30.0)
    rng = random.Random(7)
    delays = [policy.delay(n, None, rng) for n in (1, 2, 3)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert policy.delay(4, None, rng) is None


def test_retry_after_is_honoured_but_not_beyond_reason():
    policy = RetryPolicy(max_retries=3, max_retry_after=60)
    rng = random.Random(1)
    assert 2.5 <= policy.delay(1, 2.5, rng) <= 3.5
    assert policy.delay(1, 600, rng) is None  # a provider that wants 10 minutes is down for us


@pytest.mark.parametrize(
    ("model", "vision"),
    [
        ("claude-sonnet-4-5", True),
        ("anthropic/claude-sonnet-4", True),
        ("gpt-4o-mini", True),
        ("moonshotai/Kimi-K2-Instruct-0905", False),
        ("meta-llama/llama-3.3-70b", False),
    ],
)
def test_capabilities_are_data(model, vision):
    assert capabilities_for(model).vision is vision


@pytest.mark.parametrize(
    ("model", "takes_temperature"),
    [
        ("o3-mini", False),
        ("openai/o3", False),
        ("openai/o4-mini-high", False),
        ("gpt-5.5", False),
        ("gpt-4o", True),
        # Names that merely contain "o3" are not reasoning models.
        ("acme/turbo3-chat", True),
        ("my-model-o3x", True),
    ],
)
def test_which_models_take_a_temperature_is_data(model, takes_temperature):
    assert ("temperature" in capabilities_for(model).sampling_params) is takes_temperature


def test_unknown_models_get_conservative_defaults():
    assert capabilities_for("my-local-model") == DEFAULT
    assert DEFAULT.vision is False and DEFAULT.tools is True


def test_tool_call_arguments_parse_or_explain():
    assert ToolCall("1", "t", '{"a": 1}').arguments == {"a": 1}
    assert ToolCall("1", "t", "").arguments == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        _ = ToolCall("1", "t", '{"a": ').arguments
    with pytest.raises(ValueError, match="JSON object"):
        _ = ToolCall("1", "t", "[1, 2]").arguments


def _conversation() -> list[Message]:
    return [
        Message(role="user", content=[TextPart("look"), ImagePart("image/png", data=b"\x89PNG")]),
        Message(
            role="assistant",
            content=[TextPart("checking")],
            tool_calls=[ToolCall("c1", "a", '{"x": 1}'), ToolCall("c2", "b", "{bad")],
        ),
        Message.tool_result("c1", "one"),
        Message.tool_result("c2", "error: bad json", is_error=True),
        Message.text("user", "and?"),
    ]


def test_anthropic_conversion_groups_tool_results_in_one_user_turn():
    out = to_anthropic_messages(_conversation())
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw==",
    }
    uses = [b for b in out[1]["content"] if b["type"] == "tool_use"]
    assert [u["input"] for u in uses] == [{"x": 1}, {}]  # broken JSON replays as {}
    kinds = [b["type"] for b in out[2]["content"]]
    assert kinds == ["tool_result", "tool_result", "text"]
    assert out[2]["content"][1]["is_error"] is True


def test_openai_conversion_keeps_raw_arguments_and_images():
    out = to_openai_messages("be nice", _conversation())
    assert out[0] == {"role": "system", "content": "be nice"}
    assert out[1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert out[2]["tool_calls"][1]["function"]["arguments"] == "{bad"
    assert [m["role"] for m in out[3:]] == ["tool", "tool", "user"]


# -- transport failures, in whichever form the SDK lets them out ------------------------

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/messages")


def _raw_and_wrapped() -> list[BaseException]:
    """Real instances of what a drop, a read timeout and a cut body raise: the
    transport's own errors (what escaped anthropic-python <= 2.10's stream iterator,
    and what Clara's raw streamed response raises) and the SDKs' wrappers (2.17)."""
    return [
        httpx2.RemoteProtocolError("peer closed connection (incomplete chunked read)"),
        httpx2.ReadError("Response payload is not completed"),
        httpx2.ReadTimeout("timed out", request=_REQUEST),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        TimeoutError(),
        anthropic.APIConnectionError(request=_REQUEST),
        anthropic.APITimeoutError(request=_REQUEST),
        openai.APIConnectionError(request=_REQUEST),
        openai.APITimeoutError(request=_REQUEST),
    ]


@pytest.mark.parametrize("exc", _raw_and_wrapped(), ids=lambda e: type(e).__qualname__)
def test_every_form_of_a_transport_failure_maps_to_a_retryable_error(exc):
    error = translate_error(exc, "prov")
    assert type(error) is ProviderUnavailable
    assert error.status is None and error.provider == "prov"


def _own_failures() -> list[tuple[str, BaseException]]:
    """Per wire, the failures that can come out of it (never the other SDK's errors)."""
    foreign = {"openai": anthropic.AnthropicError, "anthropic": openai.OpenAIError}
    return [
        (wire, exc)
        for wire in ("openai", "anthropic")
        for exc in _raw_and_wrapped()
        if not isinstance(exc, foreign[wire])
    ]


@pytest.mark.parametrize(
    ("wire", "exc"), _own_failures(), ids=lambda v: v if isinstance(v, str) else type(v).__name__
)
async def test_providers_translate_raw_and_wrapped_failures_alike(wire, exc):
    provider = wire_class(wire)(Endpoint("prov", wire, "http://127.0.0.1:9", "k"))
    try:
        with pytest.raises(ProviderUnavailable) as info, provider._translated():
            raise exc
    finally:
        await provider.aclose()
    assert info.value.__cause__ is exc


async def test_a_cut_json_body_is_retryable():
    provider = wire_class("openai")(Endpoint("prov", "openai", "http://127.0.0.1:9", "k"))
    try:
        with (
            pytest.raises(ProviderUnavailable, match="malformed response body"),
            provider._translated(),
        ):
            json.loads('{"id": "chatcmpl-1", "choi')
    finally:
        await provider.aclose()


# -- what each route is sent: capabilities and wires as data ----------------------------


def _service(provider: str, **overrides) -> LLMService:
    values = {
        "llm_provider": provider,
        "anthropic_api_key": "k",
        "custom_openai_api_key": "k",
        "custom_openai_base_url": "http://127.0.0.1:9/v1",
        **overrides,
    }
    return LLMService(load_settings(env_file=None, **values))


SCHEMA = OutputSchema(
    "facts",
    {
        "type": "object",
        "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
        "required": ["facts"],
        "additionalProperties": False,
    },
)


@pytest.mark.parametrize(
    ("provider", "model", "temperature"),
    [
        ("anthropic", "claude-sonnet-4-5", None),  # the wire takes no temperature
        ("openai", "gpt-4o", 0.0),
        ("openai", "gpt-5-mini", None),  # reasoning models refuse it
        ("openai", "my-local-model", 0.0),
    ],
)
async def test_sampling_parameters_are_sent_only_where_accepted(provider, model, temperature):
    field = "anthropic_model" if provider == "anthropic" else "custom_openai_model"
    service = _service(provider, **{field: model})
    try:
        route = service.primary_route(None, with_tools=False)
        request = service._request(
            ChatRequest([Message.text("user", "hi")], temperature=0.0), route
        )
    finally:
        await service.aclose()
    assert request.temperature == temperature


@pytest.mark.parametrize(
    ("provider", "model", "structured"),
    [
        ("anthropic", "claude-sonnet-4-5", True),
        ("openai", "gpt-4o", True),
        ("openai", "my-local-model", False),  # unknown: prompt only, parsed tolerantly
    ],
)
async def test_structured_output_only_where_the_model_has_it(provider, model, structured):
    field = "anthropic_model" if provider == "anthropic" else "custom_openai_model"
    service = _service(provider, **{field: model})
    try:
        route = service.primary_route(None, with_tools=False)
        request = service._request(
            ChatRequest([Message.text("user", "hi")], output_schema=SCHEMA), route
        )
    finally:
        await service.aclose()
    assert (request.output_schema is SCHEMA) is structured


async def test_wire_parameters_for_structured_output():
    request = CompletionRequest(
        "m", [Message.text("user", "hi")], temperature=0.5, output_schema=SCHEMA
    )
    oai = OpenAIChatProvider(Endpoint("prov", "openai", "http://127.0.0.1:9/v1", "k"))
    claude = AnthropicMessagesProvider(Endpoint("prov", "anthropic", "http://127.0.0.1:9", "k"))
    try:
        openai_params = oai._params(request)
        anthropic_params = claude._params(request)
    finally:
        await oai.aclose()
        await claude.aclose()
    assert openai_params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "facts", "schema": SCHEMA.schema, "strict": True},
    }
    assert openai_params["temperature"] == 0.5
    assert anthropic_params["tool_choice"] == {"type": "tool", "name": "facts"}
    assert anthropic_params["tools"][-1]["input_schema"] == SCHEMA.schema
    # The Anthropic wire declares no sampling parameters; even a request that
    # carries one (the service never builds such) does not put it on the wire.
    assert "temperature" not in anthropic_params
