"""Request rules of ``POST /v1/messages`` that the real Anthropic API enforces.

Error messages mimic the real API's ``"<json.path>: <problem>"`` wording.
Consecutive same-role messages are allowed (the real API merges them).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import WireError
from .images import IMAGE_MEDIA_TYPES, decode_base64, sniff_media_type
from .json_schema import schema_problem

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Base64 image data larger than this is rejected (the real per-image API limit).
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024

_USER_BLOCKS = {"text", "image", "document", "tool_result", "search_result", "container_upload"}
_ASSISTANT_BLOCKS = {
    "text",
    "tool_use",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
}
_TOOL_RESULT_BLOCKS = {"text", "image", "document", "search_result"}

#: The request body's top-level fields: ``MessageCreateParams`` of the SDK the
#: fake is pinned against (anthropic-python 2.17; the self-test
#: ``test_anthropic_known_fields_match_the_sdk`` keeps the two in step), plus
#: ``stream``.  The API rejects anything else with 400 "Extra inputs are not
#: permitted" — e.g. ``temperature``, which this API version no longer takes.
KNOWN_FIELDS = frozenset(
    {
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "max_tokens",
        "messages",
        "metadata",
        "model",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "workspace_id",
    }
)


def _bad(message: str) -> WireError:
    return WireError(400, message)


def validate_messages_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise _bad("Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise _bad(f"{name}: Field required")
    for name in body:
        if name not in KNOWN_FIELDS:
            raise _bad(f"{name}: Extra inputs are not permitted")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _bad("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _bad("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    _check_system(body.get("system"))
    for i, message in enumerate(messages):
        _check_message(i, message, last=i == len(messages) - 1)
    if messages[0]["role"] != "user":
        raise _bad('messages: first message must use the "user" role')
    _check_tool_pairing(messages)
    tool_names = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), tool_names)
    _check_options(body, max_tokens)


# ------------------------------------------------------------------ system & messages


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _bad("system: Input should be a valid string or a list of text blocks")
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"system.{k}.type: Input should be 'text'")
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(f"system.{k}.text: Field required")
        if not text:
            raise _bad("system: text content blocks must be non-empty")


def _check_message(i: int, message: Any, *, last: bool) -> None:
    if not isinstance(message, dict):
        raise _bad(f"messages.{i}: Input should be a valid dictionary")
    role = message.get("role")
    if role is None:
        raise _bad(f"messages.{i}.role: Field required")
    if role == "system":
        raise _bad(
            'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
            'parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if "content" not in message:
        raise _bad(f"messages.{i}.content: Field required")
    content = message["content"]
    final_assistant = last and role == "assistant"
    if isinstance(content, str):
        if not content and not final_assistant:
            raise _bad(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if content and not content.strip():
            raise _bad("messages: text content blocks must contain non-whitespace text")
        if final_assistant and content != content.rstrip():
            raise _bad("messages: final assistant content cannot end with trailing whitespace")
        return
    if not isinstance(content, list):
        raise _bad(f"messages.{i}.content: Input should be a valid string or a list of blocks")
    if not content and not final_assistant:
        raise _bad(
            f"messages.{i}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    for j, block in enumerate(content):
        _check_block(f"messages.{i}.content.{j}", block, allowed, role)
    if final_assistant and content:
        tail = content[-1]
        if tail.get("type") == "text" and tail["text"] != tail["text"].rstrip():
            raise _bad("messages: final assistant content cannot end with trailing whitespace")


def _check_block(path: str, block: Any, allowed: set[str], role: str) -> None:
    if not isinstance(block, dict):
        raise _bad(f"{path}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in allowed:
        if kind in _USER_BLOCKS | _ASSISTANT_BLOCKS:
            raise _bad(f"{path}: `{kind}` blocks are not allowed in `{role}` messages")
        expected = ", ".join(f"'{k}'" for k in sorted(allowed))
        raise _bad(
            f"{path}: Input tag '{kind}' found using 'type' does not match any of the expected "
            f"tags: {expected}"
        )
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(f"{path}.text: Field required")
        if not text:
            raise _bad("messages: text content blocks must be non-empty")
        if not text.strip():
            raise _bad("messages: text content blocks must contain non-whitespace text")
    elif kind == "image":
        _check_image(f"{path}.image", block.get("source"))
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str):
            raise _bad(f"{path}.tool_use.id: Field required")
        if not isinstance(block.get("name"), str):
            raise _bad(f"{path}.tool_use.name: Field required")
        if not isinstance(block.get("input"), dict):
            raise _bad(f"{path}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise _bad(f"{path}.tool_result.tool_use_id: Field required")
        is_error = block.get("is_error")
        if is_error is not None and not isinstance(is_error, bool):
            raise _bad(f"{path}.tool_result.is_error: Input should be a valid boolean")
        inner = block.get("content")
        if inner is None or isinstance(inner, str):
            return
        if not isinstance(inner, list):
            raise _bad(f"{path}.tool_result.content: Input should be a valid string or list")
        for k, sub in enumerate(inner):
            _check_block(f"{path}.tool_result.content.{k}", sub, _TOOL_RESULT_BLOCKS, "tool_result")
    elif kind == "thinking" and not (
        isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    ):
        raise _bad(f"{path}.thinking: `thinking` and `signature` are required")


def _check_image(path: str, source: Any) -> None:
    if not isinstance(source, dict):
        raise _bad(f"{path}.source: Field required")
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad(f"{path}.source.url.url: Input should be a valid URL")
        return
    if kind == "file":
        if not isinstance(source.get("file_id"), str):
            raise _bad(f"{path}.source.file.file_id: Field required")
        return
    if kind != "base64":
        raise _bad(
            f"{path}.source: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'base64', 'file', 'url'"
        )
    media_type = source.get("media_type")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise _bad(
            f"{path}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise _bad(f"{path}.source.base64.data: Field required")
    if len(data) > MAX_IMAGE_BASE64_BYTES:
        raise _bad(
            f"{path}.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > "
            f"{MAX_IMAGE_BASE64_BYTES} bytes"
        )
    raw = decode_base64(data)
    sniffed = None if raw is None else sniff_media_type(raw)
    if sniffed is None:
        raise _bad(f"{path}.source.base64.data: Could not process image")
    if sniffed != media_type:
        raise _bad(
            f"{path}.source.base64.data: Image does not match the provided media type {media_type}"
        )


def _check_tool_pairing(messages: list[dict[str, Any]]) -> None:
    """Each assistant ``tool_use`` needs a ``tool_result`` in the very next (user) message,
    and each ``tool_result`` must answer a ``tool_use`` of the message right before it."""
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        if message["role"] == "assistant":
            uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            for use_id in uses:
                if use_id in seen_ids:
                    raise _bad(f"messages.{i}: `tool_use` ids must be unique")
                seen_ids.add(use_id)
            if not uses:
                continue
            following = messages[i + 1] if i + 1 < len(messages) else None
            answered: set[str] = set()
            if following is not None and following["role"] == "user":
                content = following["content"]
                answered = {
                    b["tool_use_id"]
                    for b in (content if isinstance(content, list) else [])
                    if b.get("type") == "tool_result"
                }
            missing = [u for u in uses if u not in answered]
            if missing:
                raise _bad(
                    f"messages.{i + 1 if following is not None else i}: `tool_use` ids were found "
                    f"without `tool_result` blocks immediately after: {', '.join(missing)}. Each "
                    "`tool_use` block must have a corresponding `tool_result` block in the next "
                    "message."
                )
        else:
            previous = messages[i - 1] if i > 0 else None
            asked: set[str] = set()
            if previous is not None and previous["role"] == "assistant":
                content = previous["content"]
                asked = {
                    b["id"]
                    for b in (content if isinstance(content, list) else [])
                    if b.get("type") == "tool_use"
                }
            for j, block in enumerate(blocks):
                if block.get("type") == "tool_result" and block["tool_use_id"] not in asked:
                    raise _bad(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block "
                        "must have a corresponding `tool_use` block in the previous message."
                    )


# ------------------------------------------------------------------ tools & options


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _bad("tools: Input should be a valid list")
    names: list[str] = []
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{k}: Input should be a valid dictionary")
        name = tool.get("name")
        if tool.get("type") not in (None, "custom"):  # a versioned built-in / server tool
            if not isinstance(name, str):
                raise _bad(f"tools.{k}.name: Field required")
            names.append(name)
            continue
        if not isinstance(name, str):
            raise _bad(f"tools.{k}.custom.name: Field required")
        if not TOOL_NAME.match(name):
            raise _bad(
                f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if "input_schema" not in tool:
            raise _bad(f"tools.{k}.custom.input_schema: Field required")
        schema = tool["input_schema"]
        if not isinstance(schema, dict):
            raise _bad(f"tools.{k}.custom.input_schema: Input should be a valid dictionary")
        if schema.get("type") != "object":
            raise _bad(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
        problem = schema_problem(schema)
        if problem:
            raise _bad(
                f"tools.{k}.custom.input_schema: JSON schema is invalid. It must match JSON "
                f"Schema draft 2020-12 (https://json-schema.org/draft/2020-12): {problem}"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise _bad("tools: Tool names must be unique.")
    return set(names)


def _check_tool_choice(choice: Any, tool_names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise _bad(
            "tool_choice: Input tag found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    if choice["type"] == "tool" and choice.get("name") not in tool_names:
        raise _bad(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in `tools`")


def _check_options(body: dict[str, Any], max_tokens: int) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream: Input should be a valid boolean")
    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)
    ):
        raise _bad("stop_sequences: Input should be a valid list of strings")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise _bad("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise _bad(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if max_tokens <= budget:
            raise _bad("`max_tokens` must be greater than `thinking.budget_tokens`.")
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            raise _bad("Thinking may not be enabled when tool_choice forces tool use.")
