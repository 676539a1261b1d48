"""Turn model objects into the JSON payloads Discord sends (API v10 shapes).

Gateway events carry a little more than REST responses (``guild_id`` and
``member`` on guild messages, ``member`` on mentioned users); ``gateway=True``
selects that form.
"""

from __future__ import annotations

from typing import Any

from .models import (
    ChannelType,
    FakeAttachment,
    FakeChannel,
    FakeCommand,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
)
from .state import FakeState


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


def user_payload(user: FakeUser) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(user.id),
        "username": user.username,
        "global_name": user.global_name,
        "discriminator": "0",
        "avatar": user.avatar,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
    }
    if user.bot:
        payload["bot"] = True
    return payload


def self_user_payload(user: FakeUser) -> dict[str, Any]:
    """The bot's own user (``/users/@me`` and READY)."""
    return {
        **user_payload(user),
        "verified": True,
        "mfa_enabled": False,
        "email": None,
        "locale": "en-US",
        "premium_type": 0,
        "bio": "",
    }


def role_payload(role: FakeRole) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(role.id),
        "name": role.name,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": 0,
    }
    if role.tags is not None:
        payload["tags"] = dict(role.tags)
    return payload


def member_payload(
    state: FakeState,
    member: FakeMember,
    *,
    with_user: bool = True,
    with_permissions: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "roles": [str(r) for r in member.roles],
        "joined_at": member.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user:
        payload["user"] = user_payload(state.user(member.user_id))
    if with_permissions:
        payload["permissions"] = str(state.member_permissions(member.guild_id, member.user_id))
    return payload


def thread_payload(channel: FakeChannel) -> dict[str, Any]:
    """A thread channel (types 10-12): no position or overwrites, but an owner,
    counts and ``thread_metadata``."""
    return {
        "id": str(channel.id),
        "type": int(channel.type),
        "guild_id": _sid(channel.guild_id),
        "parent_id": _sid(channel.parent_id),
        "owner_id": _sid(channel.owner_id),
        "name": channel.name,
        "last_message_id": _sid(channel.last_message_id),
        "rate_limit_per_user": channel.rate_limit_per_user,
        "message_count": channel.message_count,
        "member_count": channel.member_count,
        "total_message_sent": channel.total_message_sent,
        "flags": 0,
        "thread_metadata": {
            "archived": channel.archived,
            "auto_archive_duration": channel.auto_archive_duration,
            "archive_timestamp": channel.archive_timestamp,
            "locked": channel.locked,
            "create_timestamp": channel.create_timestamp,
        },
    }


def channel_payload(state: FakeState, channel: FakeChannel) -> dict[str, Any]:
    if channel.is_thread:
        return thread_payload(channel)
    if channel.is_dm:
        return {
            "id": str(channel.id),
            "type": int(channel.type),
            "last_message_id": _sid(channel.last_message_id),
            "flags": 0,
            "recipients": [user_payload(state.user(uid)) for uid in channel.recipient_ids],
        }
    payload: dict[str, Any] = {
        "id": str(channel.id),
        "type": int(channel.type),
        "guild_id": _sid(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "parent_id": _sid(channel.parent_id),
        "nsfw": channel.nsfw,
        "flags": 0,
    }
    if channel.type in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
        payload.update(
            topic=channel.topic,
            last_message_id=_sid(channel.last_message_id),
            rate_limit_per_user=channel.rate_limit_per_user,
        )
    elif channel.type == ChannelType.GUILD_VOICE:
        payload.update(
            bitrate=64000,
            user_limit=0,
            rtc_region=None,
            last_message_id=_sid(channel.last_message_id),
            rate_limit_per_user=0,
        )
    elif channel.type == ChannelType.GUILD_FORUM:
        payload.update(
            topic=channel.topic,
            last_message_id=_sid(channel.last_message_id),
            rate_limit_per_user=channel.rate_limit_per_user,
            available_tags=[],
            default_reaction_emoji=None,
            default_thread_rate_limit_per_user=0,
            default_sort_order=None,
            default_forum_layout=0,
        )
    return payload


def guild_payload(
    state: FakeState,
    guild: FakeGuild,
    *,
    include_members: bool = True,
) -> dict[str, Any]:
    """A full GUILD_CREATE guild.  Without the GUILD_MEMBERS intent Discord only
    includes the bot's own member; ``include_members=False`` gives that form."""
    members = [m for m in guild.members.values() if include_members or m.user_id == state.bot.id]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "application_id": None,
        "features": [],
        "roles": [role_payload(r) for r in guild.roles.values()],
        "emojis": [],
        "stickers": [],
        "joined_at": guild.joined_at,
        "large": False,
        "unavailable": False,
        "lazy": True,
        "member_count": len(guild.members),
        "members": [member_payload(state, m) for m in members],
        "channels": [channel_payload(state, c) for c in guild.channels.values()],
        "threads": [thread_payload(t) for t in guild.active_threads],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "embedded_activities": [],
        "incidents_data": None,
    }


def attachment_payload(attachment: FakeAttachment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "size": attachment.size,
        "url": attachment.url,
        "proxy_url": attachment.url,
        "content_type": attachment.content_type,
        "flags": 0,
    }
    if attachment.description is not None:
        payload["description"] = attachment.description
    if attachment.duration_secs is not None:
        payload["duration_secs"] = attachment.duration_secs
    if attachment.waveform is not None:
        payload["waveform"] = attachment.waveform
    return payload


def message_payload(
    state: FakeState,
    message: FakeMessage,
    *,
    gateway: bool = False,
    strip_content: bool = False,
    with_referenced: bool = True,
) -> dict[str, Any]:
    """A message object.  ``strip_content`` blanks what the MESSAGE_CONTENT intent
    guards (content, embeds, attachments, components)."""
    author = state.user(message.author_id)
    guild = state.guilds.get(message.guild_id) if message.guild_id else None
    mentions = []
    for uid in message.mention_ids:
        user = state.users.get(uid)
        if user is None:
            continue
        entry = user_payload(user)
        if gateway and guild is not None and uid in guild.members:
            entry["member"] = member_payload(state, guild.members[uid], with_user=False)
        mentions.append(entry)

    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "type": int(message.type),
        "author": user_payload(author),
        "content": "" if strip_content else message.content,
        "timestamp": message.timestamp,
        "edited_timestamp": message.edited_timestamp,
        "tts": message.tts,
        "mention_everyone": message.mention_everyone,
        "mentions": mentions,
        "mention_roles": [str(r) for r in message.mention_role_ids],
        "attachments": []
        if strip_content
        else [attachment_payload(a) for a in message.attachments],
        "embeds": [] if strip_content else [dict(e) for e in message.embeds],
        "components": [] if strip_content else [dict(c) for c in message.components],
        "pinned": message.pinned,
        "flags": message.flags,
    }
    thread = state.channels.get(message.thread_id) if message.thread_id is not None else None
    if thread is not None:
        payload["thread"] = thread_payload(thread)
    if message.nonce is not None:
        payload["nonce"] = message.nonce
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
    if message.application_id is not None:
        payload["application_id"] = str(message.application_id)
    if message.interaction_metadata is not None:
        payload["interaction_metadata"] = dict(message.interaction_metadata)
    if gateway and guild is not None:
        payload["guild_id"] = str(guild.id)
        member = guild.members.get(message.author_id)
        if member is not None and message.webhook_id is None:
            payload["member"] = member_payload(state, member, with_user=False)
    if message.reference is not None:
        payload["message_reference"] = dict(message.reference)
        ref_id = message.referenced_message_id
        if with_referenced and ref_id is not None:
            referenced = state.messages.get(ref_id)
            if referenced is None or referenced.deleted:
                payload["referenced_message"] = None
            else:
                payload["referenced_message"] = message_payload(
                    state,
                    referenced,
                    gateway=False,
                    strip_content=strip_content,
                    with_referenced=False,
                )
    return payload


def command_payload(command: FakeCommand) -> dict[str, Any]:
    data = command.data
    payload: dict[str, Any] = {
        "id": str(command.id),
        "application_id": str(command.application_id),
        "version": str(command.version),
        "type": data.get("type", 1),
        "name": command.name,
        "name_localizations": data.get("name_localizations"),
        "description": data.get("description", ""),
        "description_localizations": data.get("description_localizations"),
        "options": data.get("options", []),
        "default_member_permissions": data.get("default_member_permissions"),
        "dm_permission": data.get("dm_permission", True),
        "contexts": data.get("contexts"),
        "integration_types": data.get("integration_types", [0]),
        "nsfw": data.get("nsfw", False),
    }
    if command.guild_id is not None:
        payload["guild_id"] = str(command.guild_id)
    return payload


def application_payload(state: FakeState, *, flags: int) -> dict[str, Any]:
    """``GET /oauth2/applications/@me``."""
    return {
        "id": str(state.application_id),
        "name": state.application_name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "hook": True,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": flags,
        "owner": user_payload(state.app_owner),
        "team": None,
        "bot": user_payload(state.bot),
        "rpc_origins": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "tags": [],
        "approximate_guild_count": len(state.guilds),
        "integration_types_config": {"0": {}},
    }
