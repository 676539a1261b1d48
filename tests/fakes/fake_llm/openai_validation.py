"""Request rules of ``POST /v1/chat/completions`` that the real OpenAI API enforces.

Messages mimic the real API's wording.  Unknown top-level fields are allowed, because
OpenAI-compatible providers (OpenRouter, NanoGPT, ...) accept extras.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import WireError
from .images import IMAGE_MEDIA_TYPES, decode_base64, sniff_media_type
from .json_schema import schema_problem, strict_problem

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_DATA_URL = re.compile(r"^data:([^;,]+);base64,(.*)$", re.DOTALL)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(param: str, expected: str, value: Any) -> WireError:
    return WireError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> WireError:
    return WireError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _invalid_value(param: str, message: str) -> WireError:
    return WireError(400, f"Invalid '{param}': {message}", param=param, code="invalid_value")


def validate_chat_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise WireError(400, "Invalid request body: expected a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "you must provide a model parameter")
    if "messages" not in body:
        raise _missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise WireError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        _check_message(f"messages[{i}]", message)
    _check_tool_sequence(messages)
    tool_names = _check_tools(body.get("tools"))
    _check_tool_choice(body, tool_names)
    _check_stream(body)
    _check_numbers(body)
    _check_response_format(body.get("response_format"), messages)


# ------------------------------------------------------------------ messages


def _check_message(param: str, message: Any) -> None:
    if not isinstance(message, dict):
        raise _invalid_type(param, "an object", message)
    role = message.get("role")
    if role is None:
        raise _missing(f"{param}.role")
    if role not in ROLES:
        raise WireError(
            400,
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
            "'function', 'tool', and 'developer'.",
            param=f"{param}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if role == "assistant":
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            _check_assistant_tool_calls(f"{param}.tool_calls", tool_calls)
        if content is None and not tool_calls and message.get("function_call") is None:
            raise _missing(f"{param}.content")
        if content is not None:
            _check_content(f"{param}.content", content, parts=("text", "refusal"))
        return
    if "content" not in message:
        raise _missing(f"{param}.content")
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if tool_call_id is None:
            raise _missing(f"{param}.tool_call_id")
        if not isinstance(tool_call_id, str):
            raise _invalid_type(f"{param}.tool_call_id", "a string", tool_call_id)
        _check_content(f"{param}.content", content, parts=("text",))
    elif role == "user":
        _check_content(
            f"{param}.content", content, parts=("text", "image_url", "input_audio", "file")
        )
    elif role == "function":
        if not isinstance(message.get("name"), str):
            raise _missing(f"{param}.name")
    else:  # system / developer
        _check_content(f"{param}.content", content, parts=("text",))


def _check_content(param: str, content: Any, *, parts: tuple[str, ...]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(param, "one of a string or array of objects", content)
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(p, "an object", part)
        kind = part.get("type")
        if kind not in parts:
            allowed = ", ".join(f"'{k}'" for k in parts)
            raise WireError(
                400,
                f"Invalid value: '{kind}'. Supported values are: {allowed}.",
                param=f"{p}.type",
                code="invalid_value",
            )
        if kind == "text" and not isinstance(part.get("text"), str):
            raise _missing(f"{p}.text")
        if kind == "image_url":
            _check_image_url(f"{p}.image_url", part.get("image_url"))


def _check_image_url(param: str, image_url: Any) -> None:
    if not isinstance(image_url, dict):
        raise _invalid_type(param, "an object", image_url)
    url = image_url.get("url")
    if not isinstance(url, str):
        raise _missing(f"{param}.url")
    detail = image_url.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        raise _invalid_value(f"{param}.detail", f"'{detail}' is not one of 'auto', 'low', 'high'.")
    if url.startswith(("http://", "https://")):
        return
    match = _DATA_URL.match(url)
    if match is None:
        raise _invalid_value(
            f"{param}.url",
            "Expected a valid URL or a base64-encoded data URL with an image MIME type "
            "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU=').",
        )
    media_type, data = match.groups()
    if media_type not in IMAGE_MEDIA_TYPES:
        raise _invalid_value(
            f"{param}.url",
            "Expected a base64-encoded data URL with an image MIME type (e.g. "
            f"'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got unsupported MIME type "
            f"'{media_type}'.",
        )
    raw = decode_base64(data)
    if raw is None or sniff_media_type(raw) is None:
        raise WireError(
            400,
            "You uploaded an unsupported image. Please make sure your image has of one the "
            "following formats: ['png', 'jpeg', 'gif', 'webp'].",
            param=f"{param}.url",
            code="invalid_image_format",
        )


def _check_assistant_tool_calls(param: str, tool_calls: Any) -> None:
    if not isinstance(tool_calls, list):
        raise _invalid_type(param, "an array", tool_calls)
    for k, call in enumerate(tool_calls):
        p = f"{param}[{k}]"
        if not isinstance(call, dict):
            raise _invalid_type(p, "an object", call)
        if not isinstance(call.get("id"), str):
            raise _missing(f"{p}.id")
        if "type" not in call:
            raise _missing(f"{p}.type")
        if call["type"] != "function":
            raise _invalid_value(f"{p}.type", f"'{call['type']}' is not 'function'.")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{p}.function")
        if not isinstance(function.get("name"), str):
            raise _missing(f"{p}.function.name")
        if "arguments" not in function:
            raise _missing(f"{p}.function.arguments")
        if not isinstance(function["arguments"], str):
            raise _invalid_type(f"{p}.function.arguments", "a string", function["arguments"])


def _check_tool_sequence(messages: list[dict[str, Any]]) -> None:
    """Tool messages must answer the immediately preceding assistant ``tool_calls``, and
    every call must be answered before the next non-tool message."""
    open_calls: set[str] | None = None  # ids of the last assistant message's calls
    unanswered: list[str] = []
    asked_at = 0
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if open_calls is None:
                raise WireError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            tool_call_id = message["tool_call_id"]
            if tool_call_id not in open_calls:
                raise WireError(
                    400,
                    f"Invalid parameter: 'tool_call_id' of '{tool_call_id}' not found in "
                    "'tool_calls' of previous message.",
                    param=f"messages.[{i}].tool_call_id",
                )
            if tool_call_id in unanswered:
                unanswered.remove(tool_call_id)
            continue
        _raise_unanswered(unanswered, asked_at)
        open_calls = None
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        if calls:
            unanswered = [call["id"] for call in calls]
            open_calls = set(unanswered)
            asked_at = i
    _raise_unanswered(unanswered, asked_at)


def _raise_unanswered(unanswered: list[str], asked_at: int) -> None:
    if unanswered:
        raise WireError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(unanswered)}",
            param=f"messages.[{asked_at}].role",
        )


# ------------------------------------------------------------------ tools & options


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    names: set[str] = set()
    for k, tool in enumerate(tools):
        p = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise _invalid_type(p, "an object", tool)
        if tool.get("type") != "function":
            raise WireError(
                400,
                f"Invalid value: '{tool.get('type')}'. Supported values are: 'function' and "
                "'custom'.",
                param=f"{p}.type",
                code="invalid_value",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{p}.function")
        name = function.get("name")
        if not isinstance(name, str):
            raise _missing(f"{p}.function.name")
        if len(name) > 64:
            raise WireError(
                400,
                f"Invalid '{p}.function.name': string too long. Expected a string with maximum "
                f"length 64, but got a string with length {len(name)} instead.",
                param=f"{p}.function.name",
                code="string_above_max_length",
            )
        if not TOOL_NAME.match(name):
            raise _invalid_value(
                f"{p}.function.name",
                "string does not match pattern. Expected a string that matches the pattern "
                "'^[a-zA-Z0-9_-]+$'.",
            )
        if "parameters" in function:
            _check_parameters(f"{p}.function.parameters", name, function["parameters"])
        names.add(name)
    return names


def _check_parameters(param: str, name: str, schema: Any) -> None:
    if not isinstance(schema, dict):
        raise _invalid_type(param, "an object", schema)
    kind = schema.get("type", "object")
    if kind != "object":
        raise WireError(
            400,
            f"Invalid schema for function '{name}': schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: \"{kind}\"'.",
            param=param,
            code="invalid_function_parameters",
        )
    properties = schema.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise WireError(
            400,
            f"Invalid schema for function '{name}': 'properties' must be an object.",
            param=param,
            code="invalid_function_parameters",
        )


def _check_tool_choice(body: dict[str, Any], tool_names: set[str]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not body.get("tools"):
        raise WireError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _invalid_value(
                "tool_choice", f"'{choice}' is not one of 'none', 'auto', 'required'."
            )
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("function", "allowed_tools"):
        raise _invalid_type("tool_choice", "one of a string or an object", choice)
    if choice["type"] == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in tool_names:
            raise WireError(
                400,
                f"Invalid value for 'tool_choice': tool choice '{name}' not found in 'tools' "
                "parameter.",
                param="tool_choice",
            )


def _check_stream(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise WireError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options)


def _check_numbers(body: dict[str, Any]) -> None:
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid_type(name, "a decimal", value)
        if value < low:
            raise WireError(
                400,
                f"Invalid '{name}': decimal below minimum value. Expected a value >= {low}, "
                f"but got {value} instead.",
                param=name,
                code="decimal_below_min_value",
            )
        if value > high:
            raise WireError(
                400,
                f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, "
                f"but got {value} instead.",
                param=name,
                code="decimal_above_max_value",
            )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid_type(name, "an integer", value)
        if value < 1:
            raise WireError(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but "
                f"got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )


# ------------------------------------------------------------------ structured output


def _schema_error(name: str, problem: str) -> WireError:
    return WireError(
        400,
        f"Invalid schema for response_format '{name}': {problem}",
        param="response_format",
        code="invalid_json_schema",
    )


def _check_response_format(response_format: Any, messages: list[Any]) -> None:
    """``text``, ``json_object`` (the prompt must mention JSON) or ``json_schema``
    (a named, valid schema; under ``strict`` the strict-mode rules too)."""
    if response_format is None:
        return
    if not isinstance(response_format, dict):
        raise _invalid_type("response_format", "an object", response_format)
    kind = response_format.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise WireError(
            400,
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and "
            "'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    if kind == "json_object":
        said = " ".join(str(m.get("content")) for m in messages if isinstance(m, dict)).lower()
        if "json" not in said:
            raise WireError(
                400,
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
            )
        return
    if kind == "text":
        return
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise _missing("response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str):
        raise _missing("response_format.json_schema.name")
    if not SCHEMA_NAME.match(name):
        raise _invalid_value(
            "response_format.json_schema.name",
            "string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$'.",
        )
    schema = spec.get("schema")
    if schema is None:
        return  # the API accepts a schema-less json_schema (any JSON object)
    if not isinstance(schema, dict):
        raise _invalid_type("response_format.json_schema.schema", "an object", schema)
    problem = schema_problem(schema)
    if problem:
        raise _schema_error(name, problem)
    if schema.get("type") != "object":
        raise _schema_error(
            name,
            "schema must be a JSON Schema of 'type: \"object\"', got "
            f"'type: \"{schema.get('type')}\"'.",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _invalid_type("response_format.json_schema.strict", "a boolean", strict)
    if strict:
        problem = strict_problem(schema)
        if problem:
            raise _schema_error(name, problem)
