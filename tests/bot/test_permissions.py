"""Permission rules (docs/bot.md, Permissions) as plain functions."""

from __future__ import annotations

import pytest

from coach_plans_bot.config import BotSettings
from coach_plans_bot.permissions import PermissionDenied, PermissionPolicy, Poster

DAN = Poster(user_id=1, role_ids=frozenset({10}))
IVY = Poster(user_id=2, role_ids=frozenset({20}))
BOSS = Poster(user_id=3, role_ids=frozenset({99}))
GUILD_ADMIN = Poster(user_id=4, guild_administrator=True)


def test_empty_lists_mean_open() -> None:
    policy = PermissionPolicy()

    assert policy.channel_allowed(123)
    assert policy.may_post_for(IVY, "coach_d")
    policy.require_coach(IVY, coach="coach_d", coach_name="Coach D")


def test_empty_admin_list_does_not_make_everyone_admin() -> None:
    policy = PermissionPolicy()

    assert not policy.is_admin(DAN)
    assert policy.is_admin(GUILD_ADMIN)


def test_allowed_channels() -> None:
    policy = PermissionPolicy(allowed_channel_ids=frozenset({7}))

    assert policy.channel_allowed(7)
    assert not policy.channel_allowed(8)


def test_coach_posters_by_user_or_role_and_admins() -> None:
    policy = PermissionPolicy(
        admin_role_ids=frozenset({99}),
        coach_allowed_ids={"coach_d": frozenset({1}), "coach_i": frozenset({20})},
    )

    assert policy.may_post_for(DAN, "coach_d")  # by user id
    assert not policy.may_post_for(IVY, "coach_d")
    assert policy.may_post_for(IVY, "coach_i")  # by role id
    assert not policy.may_post_for(DAN, "coach_i")
    assert policy.may_post_for(BOSS, "coach_d")  # admin
    assert policy.may_post_for(DAN, "coach_s")  # no list: open
    with pytest.raises(PermissionDenied, match="not allowed to post plans for Coach I"):
        policy.require_coach(DAN, coach="coach_i", coach_name="Coach I")
    assert policy.is_admin(BOSS)


def test_ownership_is_by_user_id_not_name() -> None:
    assert PermissionPolicy.may_change(DAN, author_id="1", is_admin=False)
    assert not PermissionPolicy.may_change(IVY, author_id="1", is_admin=False)
    assert PermissionPolicy.may_change(IVY, author_id="1", is_admin=True)
    assert not PermissionPolicy.may_change(DAN, author_id=None, is_admin=False)


def test_policy_from_settings() -> None:
    settings = BotSettings(
        mock_mode=True,
        allowed_channel_ids="5,6",
        admin_role_ids="99",
        coach_allowed_ids={"d": "1, 2"},
    )

    policy = PermissionPolicy.from_settings(settings)

    assert policy.allowed_channel_ids == {5, 6}
    assert policy.admin_role_ids == {99}
    assert policy.coach_allowed_ids == {"coach_d": {1, 2}}
