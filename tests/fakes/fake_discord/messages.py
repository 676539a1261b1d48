"""Channel and message REST handlers, and the message rules they share with
interaction responses and webhook follow-ups."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors, payloads, validation
from .errors import DiscordAPIError, json_response, no_content
from .models import (
    FakeAttachment,
    FakeChannel,
    FakeMessage,
    MessageFlags,
    MessageType,
    Permissions,
)
from .rest import RequestContext, UploadedFile
from .snowflake import iso_timestamp

if TYPE_CHECKING:
    from .server import FakeDiscord

#: Flags a bot may set when sending (others are ignored, as Discord does).
SENDABLE_FLAGS = int(
    MessageFlags.SUPPRESS_EMBEDS
    | MessageFlags.SUPPRESS_NOTIFICATIONS
    | MessageFlags.IS_VOICE_MESSAGE
)
EDITABLE_FLAGS = int(MessageFlags.SUPPRESS_EMBEDS)


# ------------------------------------------------------------------ helpers


def resolve_mentions(
    fake: FakeDiscord,
    content: str,
    allowed: dict[str, Any] | None,
    *,
    replied_author_id: int | None,
) -> tuple[list[int], list[int], bool]:
    """Who a bot message pings, honouring ``allowed_mentions`` like Discord."""
    users, roles, everyone = fake.state.mentions_in(content)
    if allowed is None:
        parse = {"users", "roles", "everyone"}
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied_user = True
    else:
        parse = set(allowed.get("parse") or [])
        allowed_users = {int(u) for u in allowed.get("users") or []}
        allowed_roles = {int(r) for r in allowed.get("roles") or []}
        replied_user = bool(allowed.get("replied_user", False))
    mention_ids = [u for u in users if "users" in parse or u in allowed_users]
    if replied_user and replied_author_id is not None and replied_author_id not in mention_ids:
        mention_ids.append(replied_author_id)
    role_ids = [r for r in roles if "roles" in parse or r in allowed_roles]
    return mention_ids, role_ids, everyone and "everyone" in parse


def resolve_reference(
    fake: FakeDiscord, channel: FakeChannel, reference: Any
) -> tuple[dict[str, Any] | None, FakeMessage | None]:
    """Validate a ``message_reference``; returns (stored reference, referenced message)."""
    if not reference:
        return None, None
    if not isinstance(reference, dict) or reference.get("message_id") is None:
        raise errors.invalid_form_body(
            {
                "message_reference": errors.field_error(
                    "BASE_TYPE_REQUIRED", "This field is required"
                )
            }
        )
    ref_channel_id = int(reference.get("channel_id") or channel.id)
    message_id = validation.parse_snowflake(reference["message_id"], "message_reference")
    target = fake.state.messages.get(message_id)
    if target is None or target.deleted or target.channel_id != ref_channel_id:
        if reference.get("fail_if_not_exists", True) is False:
            return None, None
        raise errors.invalid_form_body(
            {
                "message_reference": errors.field_error(
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
            }
        )
    return fake.state.reference_for(fake.state.channel(ref_channel_id), message_id), target


def build_attachments(
    fake: FakeDiscord,
    channel: FakeChannel,
    payload: dict[str, Any],
    files: list[UploadedFile],
    *,
    existing: list[FakeAttachment] | None = None,
) -> list[FakeAttachment]:
    """Attachments for a new or edited message.

    ``payload["attachments"]`` lists what the message should have: ``{"id": n}``
    for the n-th uploaded file (``files[n]``) or an existing attachment's id to
    keep it.  Without the key, uploads are appended to what exists.
    """
    existing = list(existing or [])
    by_index: dict[int, UploadedFile] = {}
    for position, upload in enumerate(files):
        index = position
        name = upload.field
        if name.startswith("files[") and name.endswith("]") and name[6:-1].isdigit():
            index = int(name[6:-1])
        by_index[index] = upload

    def store(upload: UploadedFile, meta: dict[str, Any]) -> FakeAttachment:
        attachment = fake.state.store_attachment(
            channel.id,
            meta.get("filename") or upload.filename,
            upload.data,
            base_url=fake.base_url,
            content_type=upload.content_type
            if upload.content_type not in (None, "application/octet-stream")
            else None,
            description=meta.get("description"),
        )
        # A voice message's metadata, kept as Discord keeps it.
        attachment.duration_secs = meta.get("duration_secs")
        attachment.waveform = meta.get("waveform")
        return attachment

    entries = payload.get("attachments")
    if entries is None:
        return existing + [store(u, {}) for _, u in sorted(by_index.items())]

    keep = {a.id: a for a in existing}
    result: list[FakeAttachment] = []
    used: set[int] = set()
    for entry in entries:
        try:
            ref = int(entry.get("id"))
        except (TypeError, ValueError, AttributeError):
            raise errors.invalid_form_body(
                {"attachments": errors.field_error("BASE_TYPE_REQUIRED", "This field is required")}
            ) from None
        if ref in keep:
            result.append(keep[ref])
        elif ref in by_index:
            result.append(store(by_index[ref], entry))
            used.add(ref)
        else:
            raise errors.invalid_form_body(
                {"attachments": errors.field_error("ATTACHMENT_NOT_FOUND", "Unknown attachment")}
            )
    # Files uploaded but not listed are still attached (Discord does the same).
    result.extend(store(u, {}) for i, u in sorted(by_index.items()) if i not in used)
    return result


def check_can_send(fake: FakeDiscord, channel: FakeChannel) -> None:
    if channel.is_dm:
        for user_id in channel.recipient_ids:
            user = fake.state.user(user_id)
            if not user.dms_open or user.bot:
                raise DiscordAPIError(
                    403, errors.CANNOT_SEND_TO_USER, "Cannot send messages to this user"
                )


def create_bot_message(
    fake: FakeDiscord,
    channel: FakeChannel,
    payload: dict[str, Any],
    files: list[UploadedFile],
    *,
    type: MessageType | None = None,
    flags_mask: int = SENDABLE_FLAGS,
    extra_flags: int = 0,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction_metadata: dict[str, Any] | None = None,
    allow_empty: bool = False,
) -> FakeMessage:
    """Validate a message payload the bot sent and store the message (no dispatch)."""
    validation.check_upload_size(sum(len(f.data) for f in files), fake.config)
    validation.check_message_fields(payload, fake.config, attachment_count=len(files))
    if int(payload.get("flags") or 0) & flags_mask & MessageFlags.IS_VOICE_MESSAGE:
        validation.check_voice_message(payload, files)
    content = payload.get("content") or ""
    embeds = list(payload.get("embeds") or [])
    if not allow_empty and validation.is_empty_message(
        content, embeds=embeds, attachment_count=len(files), payload=payload
    ):
        raise validation.empty_message()
    reference, referenced = resolve_reference(fake, channel, payload.get("message_reference"))
    mention_ids, role_ids, everyone = resolve_mentions(
        fake,
        content,
        payload.get("allowed_mentions"),
        replied_author_id=referenced.author_id if referenced else None,
    )
    attachments = build_attachments(fake, channel, payload, files)
    flags = (int(payload.get("flags") or 0) & flags_mask) | extra_flags
    return fake.state.store_message(
        channel,
        fake.state.bot.id,
        content,
        embeds=embeds,
        attachments=attachments,
        components=list(payload.get("components") or []),
        mention_ids=mention_ids,
        mention_role_ids=role_ids,
        mention_everyone=everyone,
        reference=reference,
        nonce=payload.get("nonce"),
        tts=bool(payload.get("tts", False)),
        flags=flags,
        type=type,
        webhook_id=webhook_id,
        application_id=application_id,
        interaction_metadata=interaction_metadata,
    )


def apply_edit(
    fake: FakeDiscord,
    message: FakeMessage,
    payload: dict[str, Any],
    files: list[UploadedFile],
) -> None:
    """Validate and apply an edit (content / embeds / attachments / flags / components)."""
    validation.check_upload_size(sum(len(f.data) for f in files), fake.config)
    validation.check_message_fields(payload, fake.config, attachment_count=len(files))
    channel = fake.state.channel(message.channel_id)

    content = message.content
    if "content" in payload:
        content = payload["content"] or ""
    embeds = message.embeds
    if "embeds" in payload:
        embeds = list(payload["embeds"] or [])
    attachments = message.attachments
    if "attachments" in payload or files:
        attachments = build_attachments(fake, channel, payload, files, existing=message.attachments)
    components = message.components
    if "components" in payload:
        components = list(payload["components"] or [])

    if validation.is_empty_message(
        content,
        embeds=embeds,
        attachment_count=len(attachments),
        payload={"components": components, "sticker_ids": None, "poll": None},
    ):
        raise validation.empty_message()
    validation.check_message_fields(
        {"content": content, "embeds": embeds},
        fake.config,
        attachment_count=len(attachments),
    )

    if content != message.content or "allowed_mentions" in payload:
        referenced = message.referenced_message_id
        ref_author = (
            fake.state.messages[referenced].author_id if referenced in fake.state.messages else None
        )
        message.mention_ids, message.mention_role_ids, message.mention_everyone = resolve_mentions(
            fake, content, payload.get("allowed_mentions"), replied_author_id=ref_author
        )
    message.content = content
    message.embeds = embeds
    message.attachments = attachments
    message.components = components
    if "flags" in payload and payload["flags"] is not None:
        keep = message.flags & ~EDITABLE_FLAGS & ~int(MessageFlags.LOADING)
        message.flags = keep | (int(payload["flags"]) & EDITABLE_FLAGS)
    else:
        message.flags &= ~int(MessageFlags.LOADING)
    message.edited_timestamp = iso_timestamp()
    message.record_revision()


def message_response(fake: FakeDiscord, message: FakeMessage, *, status: int = 200) -> web.Response:
    return json_response(payloads.message_payload(fake.state, message), status=status)


# ----------------------------------------------------------------- handlers


async def get_channel(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    return json_response(payloads.channel_payload(fake.state, channel))


async def send_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    check_can_send(fake, channel)
    payload = ctx.body.payload()

    nonce = payload.get("nonce")
    if nonce is not None and payload.get("enforce_nonce"):
        previous = fake.find_recent_nonce(channel.id, nonce)
        if previous is not None:
            return message_response(fake, previous)

    message = create_bot_message(fake, channel, payload, ctx.body.files)
    fake.note_nonce(message)
    fake.dispatch_message("MESSAGE_CREATE", message)
    return message_response(fake, message)


async def get_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    message = fake.state.message(int(ctx.params["channel_id"]), int(ctx.params["message_id"]))
    return json_response(
        payloads.message_payload(fake.state, message, strip_content=not fake.rest_can_read(message))
    )


async def edit_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    message = fake.state.message(int(ctx.params["channel_id"]), int(ctx.params["message_id"]))
    if message.author_id != fake.state.bot.id or message.webhook_id is not None:
        raise DiscordAPIError(
            403, errors.CANNOT_EDIT_OTHERS_MESSAGE, "Cannot edit a message authored by another user"
        )
    apply_edit(fake, message, ctx.body.payload(), ctx.body.files)
    fake.dispatch_message("MESSAGE_UPDATE", message)
    return message_response(fake, message)


async def delete_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    message = fake.state.message(channel.id, int(ctx.params["message_id"]))
    if message.author_id != fake.state.bot.id:
        if channel.is_dm:
            raise DiscordAPIError(403, 50003, "Cannot execute action on a DM channel")
        perms = fake.state.member_permissions(channel.guild_id or 0, fake.state.bot.id)
        if not perms & Permissions.MANAGE_MESSAGES:
            raise DiscordAPIError(403, 50013, "Missing Permissions")
    fake.delete_stored_message(message)
    return no_content()


async def get_history(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    limit = validation.parse_limit(ctx.query.get("limit"))
    messages = fake.state.live_messages(channel.id)  # oldest first
    if ctx.query.get("around") is not None:
        around = validation.parse_snowflake(ctx.query["around"], "around")
        older = [m for m in messages if m.id <= around]
        newer = [m for m in messages if m.id > around]
        half = limit // 2
        picked = older[-(limit - half) :] + newer[:half] if limit > 1 else older[-1:]
    elif ctx.query.get("before") is not None:
        before = validation.parse_snowflake(ctx.query["before"], "before")
        picked = [m for m in messages if m.id < before][-limit:]
    elif ctx.query.get("after") is not None:
        after = validation.parse_snowflake(ctx.query["after"], "after")
        picked = [m for m in messages if m.id > after][:limit]
    else:
        picked = messages[-limit:]
    return json_response(
        [
            payloads.message_payload(fake.state, m, strip_content=not fake.rest_can_read(m))
            for m in reversed(picked)  # Discord returns newest first
        ]
    )


async def start_thread_from_message(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    """``POST /channels/{channel_id}/messages/{message_id}/threads``: the bot starts a
    public thread from a message; the thread takes the message's id."""
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    message = fake.state.message(channel.id, int(ctx.params["message_id"]))
    payload = ctx.body.payload()
    name = payload.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise errors.invalid_form_body(
            {
                "name": errors.field_error(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            }
        )
    thread = fake.state.add_thread(
        channel.id,
        name.strip(),
        starter_message_id=message.id,
        owner_id=fake.state.bot.id,
        auto_archive_duration=int(payload.get("auto_archive_duration") or 1440),
    )
    if payload.get("rate_limit_per_user") is not None:
        thread.rate_limit_per_user = int(payload["rate_limit_per_user"])
    fake.dispatch_thread_create(thread)
    return json_response(payloads.thread_payload(thread), status=201)


async def trigger_typing(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    channel = fake.state.channel(int(ctx.params["channel_id"]))
    check_can_send(fake, channel)
    fake.typing_events.append((channel.id, time.monotonic()))
    return no_content()


async def create_dm(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    payload = ctx.body.payload()
    recipient = payload.get("recipient_id")
    if recipient is None:
        raise errors.invalid_form_body(
            {"recipient_id": errors.field_error("BASE_TYPE_REQUIRED", "This field is required")}
        )
    user_id = validation.parse_snowflake(recipient, "recipient_id")
    if user_id not in fake.state.users or user_id == fake.state.bot.id:
        raise DiscordAPIError(400, errors.INVALID_RECIPIENTS, "Invalid Recipient(s)")
    channel = fake.state.add_dm_channel(user_id)
    return json_response(payloads.channel_payload(fake.state, channel))
