"""The Discord double: an aiohttp server speaking Discord's REST API v10 and gateway v10.

Typical use (see tests/bot/test_wire.py):

    double = DiscordDouble()
    await double.start()
    double.point_discord_py(monkeypatch)      # discord.py's REST base and gateway URL -> here
    ... start the bot with token double.token ...
    await double.wait_ready()
    message = await double.post("!plan d: NVDA above 950", author=double.members[0])
    reply = await double.wait_for_bot_message()

Faults: `drop(code)` closes the live gateway connection; `identify_close_code` answers IDENTIFY
with a close code (4004 bad token, 4014 disallowed intents); `refuse_resume` answers RESUME with
INVALID_SESSION (the bot starts a new session, and READY); `gateway_down` refuses websocket
upgrades with 503; `rate_limit(method, path)` answers the next matching REST call with 429.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import secrets
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.http
import pytest
import yarl
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler
from discord.gateway import DiscordWebSocket

JSON = "application/json"  # exactly: discord.py parses a body only with this Content-Type
API_PREFIX = "/api/v10"
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
# discord.py treats a 429 without `Via` as a Cloudflare ban and does not retry it.
RATE_LIMIT_HEADERS = {"Via": "1.1 google"}
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
    b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(frozen=True)
class Member:
    """A guild member as the double knows them."""

    id: int
    name: str
    role_ids: tuple[int, ...] = ()
    bot: bool = False

    def user(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
        }

    def member(self) -> dict[str, Any]:
        return {
            "roles": [str(role) for role in self.role_ids],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }


@dataclass(frozen=True)
class RestCall:
    """One REST request the bot made (path without the /api/v10 prefix)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Session:
    id: str
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class _Connection:
    """One gateway websocket: zlib-stream compression shared by every frame of the connection."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self._compressor = zlib.compressobj()

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        await self.ws.send_bytes(self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH))


class DiscordDouble:
    """Discord on 127.0.0.1; every piece of state is plain data a test can read."""

    def __init__(self, *, token: str = "double-bot-token", members: list[Member] | None = None) -> None:
        ids = itertools.count(int(discord.utils.time_snowflake(dt.datetime.now(dt.UTC))))
        self._ids = ids
        self.token = token
        self.application_id = next(ids)
        self.guild_id = next(ids)
        self.admin_role_id = next(ids)
        self.channel_ids = [next(ids), next(ids)]
        self.bot_user = Member(next(ids), "CoachPlans", bot=True)
        self.members = members or [
            Member(next(ids), "Dan"),
            Member(next(ids), "Ivy"),
            Member(next(ids), "Sam", role_ids=(self.admin_role_id,)),
        ]
        self.messages: dict[int, dict[str, Any]] = {}  # id -> message payload (live ones)
        self.calls: list[RestCall] = []
        self.unknown_calls: list[RestCall] = []
        self.interaction_responses: list[dict[str, Any]] = []  # callbacks and followups, in order
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> sync
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.connections_opened = 0
        self.identify_close_code: int | None = None
        self.refuse_resume = False
        self.gateway_down = False
        self.heartbeat_interval_ms = 41_250
        self._rate_limits: list[tuple[str, re.Pattern[str], float]] = []
        self._sessions: dict[str, _Session] = {}
        self._live: _Connection | None = None
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- life cycle -------------------------------------------------------------------------
    async def start(self) -> DiscordDouble:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._attachment)
        app.router.add_route("*", API_PREFIX + "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._live is not None:
            await self._live.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def point_discord_py(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """discord.py 2.7 connects to its hard-coded gateway URL and REST base: aim both here."""
        monkeypatch.setattr(discord.http.Route, "BASE", self.rest_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(self.gateway_url + "/"))

    def discord_env(self) -> dict[str, str]:
        """The same for a bot process started with `python -m tests.discord_double.launch`."""
        return {
            "COACH_PLANS_TEST_DISCORD_REST": self.rest_base,
            "COACH_PLANS_TEST_DISCORD_GATEWAY": self.gateway_url + "/",
        }

    # --- what a test does -------------------------------------------------------------------
    @property
    def channel_id(self) -> int:
        return self.channel_ids[0]

    def attachment(
        self, filename: str, content_type: str | None, *, size: int | None = None
    ) -> dict[str, Any]:
        """An attachment the double serves itself (a tiny PNG whatever the name says)."""
        attachment_id = next(self._ids)
        url = f"http://127.0.0.1:{self.port}/attachments/{self.channel_id}/{attachment_id}/{filename}"
        data: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": size if size is not None else len(PNG_BYTES),
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            data["content_type"] = content_type
        return data

    async def post(
        self,
        content: str,
        *,
        author: Member | None = None,
        channel_id: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A member posts a message: stored in the channel's history and dispatched."""
        message = self._message(
            content, author or self.members[0], channel_id or self.channel_id, attachments or []
        )
        await self._dispatch("MESSAGE_CREATE", message)
        return message

    async def edit(self, message_id: int, content: str) -> dict[str, Any]:
        message = self.messages[message_id]
        message.update(content=content, edited_timestamp=_now())
        await self._dispatch("MESSAGE_UPDATE", dict(message))
        return message

    async def delete(self, message_id: int) -> None:
        message = self.messages.pop(message_id)
        await self._dispatch(
            "MESSAGE_DELETE",
            {"id": str(message_id), "channel_id": message["channel_id"], "guild_id": str(self.guild_id)},
        )

    async def slash(
        self,
        name: str,
        options: list[dict[str, Any]],
        *,
        author: Member | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> str:
        """A member runs a slash command; returns the interaction token (its responses' key)."""
        who = author or self.members[0]
        interaction_id, token = next(self._ids), secrets.token_hex(8)
        data: dict[str, Any] = {"id": str(next(self._ids)), "name": name, "type": 1, "options": options}
        if attachments:
            data["resolved"] = {"attachments": {item["id"]: item for item in attachments}}
        await self._dispatch(
            "INTERACTION_CREATE",
            {
                "id": str(interaction_id),
                "application_id": str(self.application_id),
                "type": 2,
                "data": data,
                "guild_id": str(self.guild_id),
                "channel_id": str(self.channel_id),
                "channel": self._channel(self.channel_id),
                "member": {**who.member(), "user": who.user(), "permissions": "0"},
                "token": token,
                "version": 1,
                "app_permissions": "0",
                "attachment_size_limit": 10 * 1024 * 1024,
                "locale": "en-US",
                "guild_locale": "en-US",
                "entitlements": [],
                "authorizing_integration_owners": {"0": str(self.guild_id)},
                "context": 0,
            },
        )
        return token

    async def drop(self, code: int = 4000) -> None:
        """Close the live gateway connection (4000: an error the client may RESUME after)."""
        if self._live is not None:
            live, self._live = self._live, None
            await live.ws.close(code=code)

    def rate_limit(self, method: str, path: str, retry_after: float) -> None:
        """Answer the next `method` call whose path matches the regex `path` with 429."""
        self._rate_limits.append((method, re.compile(path), retry_after))

    def history(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        """The channel's live messages, oldest first."""
        wanted = str(channel_id or self.channel_id)
        return [m for _, m in sorted(self.messages.items()) if m["channel_id"] == wanted]

    def bot_messages(self, channel_id: int | None = None) -> list[str]:
        """What the bot posted in the channel, oldest first."""
        return [m["content"] for m in self.history(channel_id) if m["author"]["id"] == str(self.bot_user.id)]

    async def wait_until(self, condition: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait for any change of the double's state until `condition()` holds."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(condition)

    async def wait_ready(self, sessions: int = 1, seconds: float = 10.0) -> None:
        """Until `sessions` READY were sent and a connection is live."""
        await self.wait_until(lambda: len(self.identifies) >= sessions and self._live is not None, seconds)

    async def wait_for_bot_messages(self, count: int, seconds: float = 10.0) -> list[str]:
        """Until the bot has posted `count` more messages than now; returns the new ones."""
        before = len(self.bot_messages())
        await self.wait_until(lambda: len(self.bot_messages()) >= before + count, seconds)
        return self.bot_messages()[before:]

    # --- REST ---------------------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            await self._notify()

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = await request.json() if request.content_type == JSON and request.can_read_body else None
        call = RestCall(request.method, path, dict(request.query), body)
        self.calls.append(call)
        # Interaction callbacks and followups are authorised by the interaction token in the path.
        token_in_path = path.startswith(("/interactions/", "/webhooks/"))
        if not token_in_path and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        for index, (method, pattern, retry_after) in enumerate(self._rate_limits):
            if method == request.method and pattern.fullmatch(path):
                del self._rate_limits[index]
                return _json(
                    {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                    status=429,
                    headers={**RATE_LIMIT_HEADERS, "Retry-After": str(retry_after)},
                )
        for method, route_path, route in self._routes():
            if method == request.method and (match := re.fullmatch(route_path, path)):
                return await route(call, **match.groupdict())
        self.unknown_calls.append(call)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _routes(self) -> list[tuple[str, str, Callable[..., Awaitable[web.Response]]]]:
        app = rf"/applications/{self.application_id}"
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("GET", r"/gateway(?:/bot)?", self._gateway_info),
            ("POST", r"/channels/(?P<channel>\d+)/messages", self._create_message),
            ("GET", r"/channels/(?P<channel>\d+)/messages", self._list_messages),
            ("POST", r"/channels/(?P<channel>\d+)/typing", self._no_content),
            ("GET", r"/guilds/(?P<guild>\d+)/members/(?P<user>\d+)", self._member),
            ("POST", r"/interactions/(?P<id>\d+)/(?P<token>\w+)/callback", self._callback),
            ("POST", rf"/webhooks/{self.application_id}/(?P<token>\w+)", self._followup),
            ("PATCH", rf"/webhooks/{self.application_id}/(?P<token>\w+)/messages/@original", self._followup),
            ("PUT", app + r"/commands", self._sync),
            ("PUT", app + r"/guilds/(?P<guild>\d+)/commands", self._sync),
            ("GET", app + r"/commands", self._commands),
            ("GET", app + r"/guilds/(?P<guild>\d+)/commands", self._commands),
        ]

    async def _me(self, call: RestCall) -> web.Response:
        return _json(self.bot_user.user())

    async def _application(self, call: RestCall) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": "Coach Plans",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.members[0].user(),
                "verify_key": "0" * 64,
                "flags": 0,
                "bot": self.bot_user.user(),
            }
        )

    async def _gateway_info(self, call: RestCall) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _create_message(self, call: RestCall, channel: str) -> web.Response:
        body = call.body or {}
        content = str(body.get("content") or "")
        if len(content) > 2000:  # Discord's own limit: the bot must split long replies
            return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
        message = self._message(content, self.bot_user, int(channel), [])
        await self._dispatch("MESSAGE_CREATE", message)
        return _json(message)

    async def _list_messages(self, call: RestCall, channel: str) -> web.Response:
        limit = int(call.query.get("limit", "50"))
        mine = [m for m in self.history(int(channel))]
        if "after" in call.query:
            after = int(call.query["after"])
            page = [m for m in mine if int(m["id"]) > after][:limit]
        else:
            before = int(call.query.get("before", str(2**63)))
            page = [m for m in mine if int(m["id"]) < before][-limit:]
        return _json(list(reversed(page)))  # Discord answers newest first

    async def _member(self, call: RestCall, guild: str, user: str) -> web.Response:
        for member in self.members:
            if str(member.id) == user:
                return _json({**member.member(), "user": member.user()})
        return _json({"message": "Unknown Member", "code": 10007}, status=404)

    async def _callback(self, call: RestCall, id: str, token: str) -> web.Response:
        body = call.body or {}
        self.interaction_responses.append({"token": token, "kind": "callback", **body})
        message = None
        if body.get("type") == 4:
            content = str(body.get("data", {}).get("content", ""))
            message = self._message(content, self.bot_user, self.channel_id, [])
        resource: dict[str, Any] = {"type": body.get("type")}
        if message is not None:
            resource["message"] = message
        return _json({"interaction": {"id": id, "type": 2}, "resource": resource})

    async def _followup(self, call: RestCall, token: str) -> web.Response:
        body = call.body or {}
        self.interaction_responses.append({"token": token, "kind": "followup", **body})
        return _json(self._message(str(body.get("content") or ""), self.bot_user, self.channel_id, []))

    async def _sync(self, call: RestCall, guild: str | None = None) -> web.Response:
        if guild is not None and int(guild) != self.guild_id:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        commands = [
            {**command, "id": str(next(self._ids)), "application_id": str(self.application_id)}
            for command in call.body or []
        ]
        self.commands[int(guild) if guild else None] = commands
        return _json(commands)

    async def _commands(self, call: RestCall, guild: str | None = None) -> web.Response:
        return _json(self.commands.get(int(guild) if guild else None, []))

    async def _no_content(self, call: RestCall, **_: str) -> web.Response:
        return web.Response(status=204)

    async def _attachment(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG_BYTES, headers={"Content-Type": "image/png"})

    # --- gateway ------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.connections_opened += 1
        if self.gateway_down:
            return web.Response(status=503, text="gateway unavailable")
        if request.query.get("compress") != "zlib-stream":
            return web.Response(status=400, text="this double speaks zlib-stream only")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws)
        await connection.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            await self._gateway_op(connection, payload["op"], payload.get("d"))
            await self._notify()
        if self._live is connection:
            self._live = None
        await self._notify()
        return ws

    async def _gateway_op(self, connection: _Connection, op: int, data: Any) -> None:
        if op == 1:  # HEARTBEAT
            await connection.send({"op": 11})
        elif op == 2:  # IDENTIFY
            await self._identify(connection, data)
        elif op == 6:  # RESUME
            await self._resume(connection, data)

    async def _identify(self, connection: _Connection, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.identify_close_code is not None:
            await connection.ws.close(code=self.identify_close_code, message=b"Refused by the test.")
            return
        session = _Session(id=secrets.token_hex(8))
        self._sessions[session.id] = session
        connection.session = session
        self._live = connection
        await self._send(
            session,
            "READY",
            {
                "v": 10,
                "user": self.bot_user.user(),
                "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                "session_id": session.id,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "shard": [0, 1],
            },
        )
        await self._send(session, "GUILD_CREATE", self._guild())

    async def _resume(self, connection: _Connection, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        session = self._sessions.get(data.get("session_id", ""))
        if self.refuse_resume or session is None or data.get("token") != self.token:
            await connection.send({"op": 9, "d": False})  # INVALID_SESSION: identify anew
            return
        connection.session = session
        self._live = connection
        # Discord replays what the client missed, then says RESUMED.
        for event in session.events:
            if event["s"] > (data.get("seq") or 0):
                await connection.send(event)
        await self._send(session, "RESUMED", {})

    async def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event on the current session; while disconnected it waits for a RESUME."""
        live = self._live
        if live is not None and live.session is not None:
            await self._send(live.session, event, data)
        else:
            for session in self._sessions.values():  # buffered for a RESUME, as Discord does
                session.seq += 1
                session.events.append({"op": 0, "t": event, "s": session.seq, "d": data})
        await self._notify()

    async def _send(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if self._live is not None and self._live.session is session:
            await self._live.send(payload)

    # --- payloads -----------------------------------------------------------------------------
    def _message(
        self, content: str, author: Member, channel_id: int, attachments: list[dict[str, Any]]
    ) -> dict[str, Any]:
        message_id = next(self._ids)
        message = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "guild_id": str(self.guild_id),
            "author": author.user(),
            "member": author.member(),
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": False,
            "type": 0,
        }
        self.messages[message_id] = message
        return message

    def _channel(self, channel_id: int) -> dict[str, Any]:
        return {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": f"plans-{self.channel_ids.index(channel_id)}",
            "position": self.channel_ids.index(channel_id),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": str(self.guild_id), "name": "@everyone", "permissions": "68608", "position": 0}
        admins = {"id": str(self.admin_role_id), "name": "Admins", "permissions": "0", "position": 1}
        roles = [
            {**role, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
            for role in (everyone, admins)
        ]
        members = [*self.members, self.bot_user]
        return {
            "id": str(self.guild_id),
            "name": "Coaches",
            "owner_id": str(self.members[0].id),
            "roles": roles,
            "channels": [self._channel(channel_id) for channel_id in self.channel_ids],
            "members": [{**member.member(), "user": member.user()} for member in members],
            "member_count": len(members),
            "large": False,
            "unavailable": False,
            "threads": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "afk_timeout": 300,
        }

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": JSON, **(headers or {})}
    )
