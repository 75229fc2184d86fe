"""Run the unmodified `coach-plans-bot` entry point against a Discord double (or a dead address).

`python -m tests.discord_double.launch` reads COACH_PLANS_TEST_DISCORD_REST (REST base, e.g.
`http://127.0.0.1:PORT/api/v10`) and COACH_PLANS_TEST_DISCORD_GATEWAY (`ws://127.0.0.1:PORT/gateway/`),
points discord.py at them, then runs the bot exactly as the console script does.
"""

from __future__ import annotations

import os

import discord.http
import yarl
from discord.gateway import DiscordWebSocket

from coach_plans_bot.__main__ import main

if __name__ == "__main__":
    discord.http.Route.BASE = os.environ["COACH_PLANS_TEST_DISCORD_REST"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["COACH_PLANS_TEST_DISCORD_GATEWAY"])
    main()
