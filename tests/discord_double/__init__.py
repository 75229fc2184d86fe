"""A wire-level Discord double for tests: Discord's REST API and gateway on 127.0.0.1.

The unmodified discord.py client talks to it exactly as it talks to Discord: REST over HTTP
(`Authorization: Bot <token>`, JSON bodies, 429 with `retry_after`) and the gateway over a
websocket with zlib-stream compression (HELLO, IDENTIFY, READY, heartbeats, RESUME, dispatches,
close codes). Point discord.py at it with `DiscordDouble.point_discord_py()` (a test) or the
`COACH_PLANS_DISCORD_*` variables of `discord_env()` (a bot process); see `server.py`.

What it models is what the bot uses: one guild with text channels and members (one role marks
admins), channel messages with history, attachments it serves itself, application-command sync,
interactions with their callbacks and followups. Anything else answers 404 and is recorded in
`unknown_calls`, so a test sees when the bot starts calling an endpoint the double lacks.
"""

from tests.discord_double.server import DiscordDouble, Member, RestCall

__all__ = ["DiscordDouble", "Member", "RestCall"]
