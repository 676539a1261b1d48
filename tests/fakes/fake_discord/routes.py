"""The route table, and the small handlers (gateway info, users, guilds, application).

Route kinds (for ``inject_429`` / ``inject_error`` / ``requests_for``):

=====================  ==================================================
``gateway``            GET /gateway, GET /gateway/bot
``me``                 GET /users/@me
``user``               GET /users/{user_id}
``dm``                 POST /users/@me/channels
``application``        GET /applications/@me, GET /oauth2/applications/@me
``channel``            GET /channels/{channel_id}
``history``            GET /channels/{channel_id}/messages
``send``               POST /channels/{channel_id}/messages
``get_message``        GET /channels/{channel_id}/messages/{message_id}
``edit``               PATCH /channels/{channel_id}/messages/{message_id}
``delete``             DELETE /channels/{channel_id}/messages/{message_id}
``typing``             POST /channels/{channel_id}/typing
``thread``             POST /channels/{channel_id}/messages/{message_id}/threads
``guild``              GET /guilds/{guild_id}[/channels|/roles|/threads/active]
``member``             GET /guilds/{guild_id}/members/{user_id}
``commands``           /applications/{app}/[guilds/{guild}/]commands[/{id}]
``interaction``        POST /interactions/{id}/{token}/callback
``followup``           /webhooks/{app}/{token}[/messages/{id|@original}]
=====================  ==================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import interactions, messages, payloads
from .errors import json_response
from .rest import RequestContext, RouteSpec

if TYPE_CHECKING:
    from .server import FakeDiscord


async def get_gateway(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    return json_response({"url": fake.gateway_url})


async def get_gateway_bot(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    return json_response(
        {
            "url": fake.gateway_url,
            "shards": fake.config.gateway_bot_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(0, 1000 - fake.identify_count),
                "reset_after": 86_400_000,
                "max_concurrency": fake.config.identify_max_concurrency,
            },
        }
    )


async def get_me(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    return json_response(payloads.self_user_payload(fake.state.bot))


async def get_user(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    return json_response(payloads.user_payload(fake.state.user(int(ctx.params["user_id"]))))


async def get_application(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    return json_response(
        payloads.application_payload(fake.state, flags=fake.config.application_flags)
    )


async def get_guild(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild = fake.state.guild(int(ctx.params["guild_id"]))
    payload = payloads.guild_payload(fake.state, guild)
    # REST guilds carry no gateway-only fields.
    for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
        payload.pop(key, None)
    return json_response(payload)


async def get_guild_channels(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild = fake.state.guild(int(ctx.params["guild_id"]))
    return json_response([payloads.channel_payload(fake.state, c) for c in guild.channels.values()])


async def get_guild_roles(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild = fake.state.guild(int(ctx.params["guild_id"]))
    return json_response([payloads.role_payload(r) for r in guild.roles.values()])


async def get_active_threads(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    guild = fake.state.guild(int(ctx.params["guild_id"]))
    return json_response(
        {"threads": [payloads.thread_payload(t) for t in guild.active_threads], "members": []}
    )


async def get_member(fake: FakeDiscord, ctx: RequestContext) -> web.StreamResponse:
    member = fake.state.member(int(ctx.params["guild_id"]), int(ctx.params["user_id"]))
    return json_response(payloads.member_payload(fake.state, member))


def _command_routes(prefix: str) -> list[RouteSpec]:
    return [
        RouteSpec("GET", prefix, "commands", interactions.list_commands),
        RouteSpec("PUT", prefix, "commands", interactions.bulk_overwrite_commands),
        RouteSpec("POST", prefix, "commands", interactions.create_command),
        RouteSpec("GET", prefix + "/{command_id:\\d+}", "commands", interactions.get_command),
        RouteSpec("PATCH", prefix + "/{command_id:\\d+}", "commands", interactions.edit_command),
        RouteSpec("DELETE", prefix + "/{command_id:\\d+}", "commands", interactions.delete_command),
    ]


CHANNEL = "/channels/{channel_id:\\d+}"
MESSAGE = CHANNEL + "/messages/{message_id:\\d+}"
WEBHOOK = "/webhooks/{webhook_id:\\d+}/{interaction_token}"

ROUTES: list[RouteSpec] = [
    RouteSpec("GET", "/gateway", "gateway", get_gateway, auth=False),
    RouteSpec("GET", "/gateway/bot", "gateway", get_gateway_bot),
    RouteSpec("GET", "/users/@me", "me", get_me),
    RouteSpec("POST", "/users/@me/channels", "dm", messages.create_dm),
    RouteSpec("GET", "/users/{user_id:\\d+}", "user", get_user),
    RouteSpec("GET", "/applications/@me", "application", get_application),
    RouteSpec("GET", "/oauth2/applications/@me", "application", get_application),
    RouteSpec("GET", CHANNEL, "channel", messages.get_channel),
    RouteSpec("GET", CHANNEL + "/messages", "history", messages.get_history),
    RouteSpec("POST", CHANNEL + "/messages", "send", messages.send_message),
    RouteSpec("GET", MESSAGE, "get_message", messages.get_message),
    RouteSpec("PATCH", MESSAGE, "edit", messages.edit_message),
    RouteSpec("DELETE", MESSAGE, "delete", messages.delete_message),
    RouteSpec("POST", CHANNEL + "/typing", "typing", messages.trigger_typing),
    RouteSpec("POST", MESSAGE + "/threads", "thread", messages.start_thread_from_message),
    RouteSpec("GET", "/guilds/{guild_id:\\d+}", "guild", get_guild),
    RouteSpec("GET", "/guilds/{guild_id:\\d+}/channels", "guild", get_guild_channels),
    RouteSpec("GET", "/guilds/{guild_id:\\d+}/roles", "guild", get_guild_roles),
    RouteSpec("GET", "/guilds/{guild_id:\\d+}/threads/active", "guild", get_active_threads),
    RouteSpec("GET", "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", "member", get_member),
    *_command_routes("/applications/{application_id:\\d+}/commands"),
    *_command_routes("/applications/{application_id:\\d+}/guilds/{guild_id:\\d+}/commands"),
    RouteSpec(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        "interaction",
        interactions.interaction_callback,
        auth=False,
        global_exempt=True,
    ),
    RouteSpec("POST", WEBHOOK, "followup", interactions.create_followup, auth=False),
    RouteSpec(
        "GET",
        WEBHOOK + "/messages/{message_id}",
        "followup",
        interactions.get_webhook_message,
        auth=False,
    ),
    RouteSpec(
        "PATCH",
        WEBHOOK + "/messages/{message_id}",
        "followup",
        interactions.edit_webhook_message,
        auth=False,
    ),
    RouteSpec(
        "DELETE",
        WEBHOOK + "/messages/{message_id}",
        "followup",
        interactions.delete_webhook_message,
        auth=False,
    ),
]

ROUTE_KINDS = frozenset(spec.kind for spec in ROUTES)
