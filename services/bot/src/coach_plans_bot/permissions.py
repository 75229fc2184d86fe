"""Pure permission rules (docs/bot.md, Permissions): allowed channels, per-coach posters, admins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coach_plans_bot.config import BotSettings


class PermissionDenied(Exception):
    """The poster may not do this; the message is the reply shown in Discord."""


@dataclass(frozen=True)
class Poster:
    """Who is asking, as plain ids: user, roles, and Discord's own Administrator flag."""

    user_id: int
    role_ids: frozenset[int] = frozenset()
    guild_administrator: bool = False


@dataclass(frozen=True)
class PermissionPolicy:
    """The configured lists; an empty list means open (admins: Discord Administrators only)."""

    allowed_channel_ids: frozenset[int] = frozenset()
    admin_role_ids: frozenset[int] = frozenset()
    coach_allowed_ids: Mapping[str, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: BotSettings) -> PermissionPolicy:
        """Build the policy from the bot's settings."""
        return cls(
            allowed_channel_ids=settings.allowed_channel_ids,
            admin_role_ids=settings.admin_role_ids,
            coach_allowed_ids=dict(settings.coach_allowed_ids),
        )

    def channel_allowed(self, channel_id: int) -> bool:
        """True when the channel is in the allowed list (or the list is empty)."""
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids

    def is_admin(self, poster: Poster) -> bool:
        """Admin = one of the admin roles, or Discord's Administrator permission.

        An empty admin list does not make everyone an admin: `!clear` deletes a whole day.
        """
        return poster.guild_administrator or bool(self.admin_role_ids & poster.role_ids)

    def may_post_for(self, poster: Poster, coach: str) -> bool:
        """True when the poster is in the coach's allowed ids (by user or role), or is admin."""
        allowed = self.coach_allowed_ids.get(coach, frozenset())
        if not allowed or self.is_admin(poster):
            return True
        return poster.user_id in allowed or bool(allowed & poster.role_ids)

    def require_coach(self, poster: Poster, *, coach: str, coach_name: str) -> None:
        """Raise PermissionDenied when the poster may not post for this coach."""
        if not self.may_post_for(poster, coach):
            raise PermissionDenied(f"You are not allowed to post plans for {coach_name}.")

    @staticmethod
    def may_change(poster: Poster, *, author_id: str | None, is_admin: bool) -> bool:
        """Only the author (by user id, never by name) or an admin may edit or delete a plan."""
        return is_admin or (author_id is not None and author_id == str(poster.user_id))
