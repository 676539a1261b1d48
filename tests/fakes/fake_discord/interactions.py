"""Application commands, interactions and their webhook follow-ups.

Rules enforced: an interaction is answered once (second callback: 400 / 40060),
within ``interaction_ack_timeout`` seconds (later: 404 / 10062 Unknown
interaction); follow-ups and ``@original`` edits need an answered interaction
and a token younger than ``interaction_token_lifetime``; command names and
descriptions follow Discord's limits (400 / 50035).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors, payloads
from .errors import DiscordAPIError, json_response, no_content
from .messages import apply_edit, create_bot_message, message_response
from .models import (
    DEFAULT_BOT_PERMISSIONS,
    FakeCommand,
    FakeInteraction,
    FakeMessage,
    InteractionCallback,
    InteractionCallbackType,
    InteractionType,
    MessageFlags,
    MessageType,
)
from .rest import RequestContext

if TYPE_CHECKING:
    from .server import FakeDiscord

CHAT_INPUT_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
MAX_OPTIONS = 25
INTERACTION_FLAGS = int(
    MessageFlags.SUPPRESS_EMBEDS | MessageFlags.EPHEMERAL | MessageFlags.SUPPRESS_NOTIFICATIONS
)


# ----------------------------------------------------------------- commands


def _check_application(fake: FakeDiscord, ctx: RequestContext) -> int | None:
    """Validate the path's application id; returns the guild id for guild routes."""
    if ctx.params["application_id"] != str(fake.state.application_id):
        raise DiscordAPIError(403, errors.MISSING_ACCESS, "Missing Access")
    if "guild_id" in ctx.params:
        return fake.state.guild(int(ctx.params["guild_id"])).id
    return None


def _command_errors(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return errors.field_error(
            "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
        )
    found: dict[str, Any] = {}
    kind = data.get("type", 1)
    name = data.get("name")
    description = data.get("description", "")
    if not isinstance(name, str) or not name:
        found["name"] = errors.field_error("BASE_TYPE_REQUIRED", "This field is required")
    elif kind == 1 and (not CHAT_INPUT_NAME_RE.match(name) or name != name.lower()):
        found["name"] = errors.field_error(
            "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
        )
    elif not 1 <= len(name) <= 32:
        found["name"] = errors.field_error(
            "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
        )
    if kind == 1 and not 1 <= len(description or "") <= 100:
        found["description"] = errors.field_error(
            "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
        )
    if kind in (2, 3) and description:
        found["description"] = errors.field_error(
            "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
            "Context menu commands cannot have description",
        )
    if len(data.get("options") or []) > MAX_OPTIONS:
        found["options"] = errors.field_error(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length."
        )
    return found


def _commands_in(fake: FakeDiscord, guild_id: int | None) -> list[FakeCommand]:
    return [c for c in fake.state.commands.values() if c.guild_id == guild_id]


def _upsert(
    fake: FakeDiscord, data: dict[str, Any], guild_id: int | None
) -> tuple[FakeCommand, bool]:
    kind = data.get("type", 1)
    for command in _commands_in(fake, guild_id):
        if command.name == data["name"] and command.data.get("type", 1) == kind:
            command.data = dict(data)
            command.version = fake.state.new_id()
            return command, False
    command = FakeCommand(
        id=fake.state.new_id(),
        application_id=fake.state.application_id,
        name=data["name"],
        data=dict(data),
        guild_id=guild_id,
        version=fake.state.new_id(),
    )
    fake.state.commands[command.id] = command
    return command, True


def _find_command(fake: FakeDiscord, ctx: RequestContext, guild_id: int | None) -> FakeCommand:
    command = fake.state.commands.get(int(ctx.params["command_id"]))
    if command is None or command.guild_id != guild_id:
        raise errors.unknown(errors.UNKNOWN_APPLICATION_COMMAND, "application command")
    return command


async def list_commands(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    return json_response([payloads.command_payload(c) for c in _commands_in(fake, guild_id)])


async def bulk_overwrite_commands(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    body = ctx.body.json if ctx.body.json is not None else []
    if not isinstance(body, list):
        raise errors.invalid_form_body(errors.field_error("BASE_TYPE_ARRAY", "Must be an array."))
    found: dict[str, Any] = {}
    seen: set[tuple[int, str]] = set()
    for index, data in enumerate(body):
        item_errors = _command_errors(data)
        if not item_errors:
            key = (data.get("type", 1), data["name"])
            if key in seen:
                item_errors = {
                    "name": errors.field_error(
                        "APPLICATION_COMMANDS_DUPLICATE_NAME",
                        "Application command names must be unique",
                    )
                }
            seen.add(key)
        if item_errors:
            found[str(index)] = item_errors
    if found:
        raise errors.invalid_form_body(found)
    kept = [_upsert(fake, data, guild_id)[0] for data in body]
    kept_ids = {c.id for c in kept}
    for command in _commands_in(fake, guild_id):
        if command.id not in kept_ids:
            del fake.state.commands[command.id]
    return json_response([payloads.command_payload(c) for c in kept])


async def create_command(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    data = ctx.body.payload()
    found = _command_errors(data)
    if found:
        raise errors.invalid_form_body(found)
    command, created = _upsert(fake, data, guild_id)
    return json_response(payloads.command_payload(command), status=201 if created else 200)


async def get_command(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    return json_response(payloads.command_payload(_find_command(fake, ctx, guild_id)))


async def edit_command(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    command = _find_command(fake, ctx, guild_id)
    data = {**command.data, **ctx.body.payload()}
    found = _command_errors(data)
    if found:
        raise errors.invalid_form_body(found)
    command.data = data
    command.name = data["name"]
    command.version = fake.state.new_id()
    return json_response(payloads.command_payload(command))


async def delete_command(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild_id = _check_application(fake, ctx)
    command = _find_command(fake, ctx, guild_id)
    del fake.state.commands[command.id]
    return no_content()


# ------------------------------------------------------------- interactions


def interaction_payload(fake: FakeDiscord, interaction: FakeInteraction) -> dict[str, Any]:
    """The INTERACTION_CREATE payload for ``interaction``."""
    state = fake.state
    channel = state.channel(interaction.channel_id)
    payload: dict[str, Any] = {
        "id": str(interaction.id),
        "application_id": str(interaction.application_id),
        "type": int(interaction.type),
        "data": interaction.data,
        "channel_id": str(channel.id),
        "channel": payloads.channel_payload(state, channel),
        "token": interaction.token,
        "version": 1,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": fake.config.attachment_size_limit,
    }
    if interaction.guild_id is not None:
        guild = state.guild(interaction.guild_id)
        member = state.member(guild.id, interaction.user_id)
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=payloads.member_payload(state, member, with_permissions=True),
            app_permissions=str(state.member_permissions(guild.id, state.bot.id)),
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,
        )
    else:
        payload.update(
            user=payloads.user_payload(state.user(interaction.user_id)),
            app_permissions=str(DEFAULT_BOT_PERMISSIONS),
            authorizing_integration_owners={"0": str(interaction.user_id)},
            context=1,
        )
    if interaction.message_id is not None:
        message = state.messages[interaction.message_id]
        payload["message"] = payloads.message_payload(state, message)
    return payload


def _interaction_metadata(fake: FakeDiscord, interaction: FakeInteraction) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": str(interaction.id),
        "type": int(interaction.type),
        "user": payloads.user_payload(fake.state.user(interaction.user_id)),
        "authorizing_integration_owners": {"0": str(interaction.guild_id or interaction.user_id)},
    }
    if interaction.type == InteractionType.APPLICATION_COMMAND:
        meta["name"] = interaction.data.get("name")
        meta["command_type"] = interaction.data.get("type", 1)
    if interaction.message_id is not None:
        meta["interacted_message_id"] = str(interaction.message_id)
    return meta


def _interaction_message(
    fake: FakeDiscord,
    interaction: FakeInteraction,
    payload: dict[str, Any],
    ctx: RequestContext,
    *,
    loading: bool = False,
) -> FakeMessage:
    channel = fake.state.channel(interaction.channel_id)
    is_command = interaction.type == InteractionType.APPLICATION_COMMAND
    return create_bot_message(
        fake,
        channel,
        {k: v for k, v in payload.items() if k != "message_reference"},
        ctx.body.files,
        type=MessageType.CHAT_INPUT_COMMAND if is_command else MessageType.DEFAULT,
        flags_mask=INTERACTION_FLAGS,
        extra_flags=int(MessageFlags.LOADING) if loading else 0,
        webhook_id=fake.state.application_id,
        application_id=fake.state.application_id,
        interaction_metadata=_interaction_metadata(fake, interaction),
        allow_empty=loading,
    )


def _callback_response(
    fake: FakeDiscord,
    interaction: FakeInteraction,
    callback_type: InteractionCallbackType,
    message: FakeMessage | None,
    ctx: RequestContext,
) -> web.StreamResponse:
    if ctx.query.get("with_response", "").lower() not in ("1", "true"):
        return no_content()
    body: dict[str, Any] = {
        "interaction": {
            "id": str(interaction.id),
            "type": int(interaction.type),
            "response_message_loading": callback_type
            == InteractionCallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            "response_message_ephemeral": bool(message and message.is_ephemeral),
        }
    }
    if message is not None:
        body["interaction"]["response_message_id"] = str(message.id)
        body["resource"] = {
            "type": int(callback_type),
            "message": payloads.message_payload(fake.state, message),
        }
    elif callback_type != InteractionCallbackType.PONG:
        body["resource"] = {"type": int(callback_type)}
    return json_response(body)


async def interaction_callback(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    raw_id = ctx.params["interaction_id"]
    interaction = fake.state.interactions.get(int(raw_id)) if raw_id.isdigit() else None
    if interaction is None or interaction.token != ctx.params["interaction_token"]:
        raise errors.unknown(errors.UNKNOWN_INTERACTION, "interaction")
    if interaction.acknowledged:
        raise DiscordAPIError(
            400,
            errors.INTERACTION_ALREADY_ACKNOWLEDGED,
            "Interaction has already been acknowledged.",
        )
    if time.monotonic() - interaction.created_at > fake.config.interaction_ack_timeout:
        raise errors.unknown(errors.UNKNOWN_INTERACTION, "interaction")

    payload = ctx.body.payload()
    try:
        callback_type = InteractionCallbackType(int(payload.get("type")))
    except (TypeError, ValueError):
        raise errors.invalid_form_body(
            {
                "type": errors.field_error(
                    "BASE_TYPE_CHOICES", "Value must be one of the allowed types."
                )
            }
        ) from None
    data = payload.get("data") or {}
    is_component = interaction.type == InteractionType.MESSAGE_COMPONENT
    allowed = {
        InteractionType.PING: {InteractionCallbackType.PONG},
        InteractionType.APPLICATION_COMMAND: {
            InteractionCallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.MODAL,
        },
        InteractionType.MESSAGE_COMPONENT: {
            InteractionCallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.DEFERRED_UPDATE_MESSAGE,
            InteractionCallbackType.UPDATE_MESSAGE,
            InteractionCallbackType.MODAL,
        },
        InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE: {
            InteractionCallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        },
        InteractionType.MODAL_SUBMIT: {
            InteractionCallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            InteractionCallbackType.DEFERRED_UPDATE_MESSAGE,
            InteractionCallbackType.UPDATE_MESSAGE,
        },
    }[interaction.type]
    if callback_type not in allowed:
        raise DiscordAPIError(400, 40043, "Interaction has an invalid response type")

    message: FakeMessage | None = None
    if callback_type == InteractionCallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
        message = _interaction_message(fake, interaction, data, ctx)
    elif callback_type == InteractionCallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
        message = _interaction_message(
            fake, interaction, {"flags": data.get("flags", 0)}, ctx, loading=True
        )
    elif callback_type == InteractionCallbackType.UPDATE_MESSAGE and is_component:
        message = fake.state.messages[interaction.message_id or 0]
        apply_edit(fake, message, data, ctx.body.files)

    interaction.callback = InteractionCallback(callback_type, data, time.monotonic())
    if message is not None:
        if callback_type == InteractionCallbackType.UPDATE_MESSAGE:
            fake.dispatch_message("MESSAGE_UPDATE", message)
        else:
            interaction.original_message_id = message.id
            fake.dispatch_message("MESSAGE_CREATE", message)
    elif callback_type == InteractionCallbackType.DEFERRED_UPDATE_MESSAGE:
        interaction.original_message_id = interaction.message_id
    return _callback_response(fake, interaction, callback_type, message, ctx)


# ----------------------------------------------------------------- webhooks


def _interaction_for_token(fake: FakeDiscord, ctx: RequestContext) -> FakeInteraction:
    if ctx.params["webhook_id"] != str(fake.state.application_id):
        raise errors.unknown(errors.UNKNOWN_WEBHOOK, "Webhook")
    token = ctx.params["interaction_token"]
    for interaction in fake.state.interactions.values():
        if interaction.token == token:
            break
    else:
        raise errors.unknown(errors.UNKNOWN_WEBHOOK, "Webhook")
    if time.monotonic() - interaction.created_at > fake.config.interaction_token_lifetime:
        raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
    if not interaction.acknowledged:
        raise errors.unknown(errors.UNKNOWN_WEBHOOK, "Webhook")
    return interaction


def _webhook_message(
    fake: FakeDiscord, ctx: RequestContext, interaction: FakeInteraction
) -> FakeMessage:
    raw = ctx.params["message_id"]
    if raw == "@original":
        message_id = interaction.original_message_id
    else:
        message_id = int(raw) if raw.isdigit() else None
        if message_id not in interaction.followup_message_ids:
            message_id = None
    message = fake.state.messages.get(message_id or 0)
    if message is None or message.deleted:
        raise errors.unknown(errors.UNKNOWN_MESSAGE, "Message")
    return message


async def create_followup(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    interaction = _interaction_for_token(fake, ctx)
    message = _interaction_message(fake, interaction, ctx.body.payload(), ctx)
    interaction.followup_message_ids.append(message.id)
    fake.dispatch_message("MESSAGE_CREATE", message)
    if ctx.query.get("wait", "").lower() in ("1", "true"):
        return message_response(fake, message)
    return no_content()


async def get_webhook_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    interaction = _interaction_for_token(fake, ctx)
    return message_response(fake, _webhook_message(fake, ctx, interaction))


async def edit_webhook_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    interaction = _interaction_for_token(fake, ctx)
    message = _webhook_message(fake, ctx, interaction)
    apply_edit(fake, message, ctx.body.payload(), ctx.body.files)
    fake.dispatch_message("MESSAGE_UPDATE", message)
    return message_response(fake, message)


async def delete_webhook_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    interaction = _interaction_for_token(fake, ctx)
    fake.delete_stored_message(_webhook_message(fake, ctx, interaction))
    return no_content()
