"""The text of the bot's answers, built from plain data (no Discord objects)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from coach_plans_bot.api import PlanView
from coach_plans_bot.outbox import Operation, OutboxEntry, Status
from coach_plans_bot.parsing import DISCORD_MESSAGE_LIMIT, Roster, paginate, preview

HELP_TEXT = """**Coach Plans bot**
`!plan d: <text>` — save Coach D's plan for today (attach up to 10 chart images)
`!plan d 2026-11-26: <text>` — save a plan for another date
`!edit <id> <text>` — replace the text of your plan (admins: any plan)
`!delete <id>` — delete your plan (admins: any plan)
`!plans [date]` — every coach's plan for a date (default: today)
`!myplans [date]` — your plans (default: your recent plans)
`!history <coach> [days]` — a coach's recent plans (default 7 days, up to 365)
`!clear [date]` — admins: delete every plan of a date (default: today)
`!help` — this message
Coaches: {coaches}. Dates are YYYY-MM-DD; "today" is in {timezone}.
Editing or deleting your `!plan` message updates or deletes the stored plan.
Each command also exists as a slash command (`/plan`, `/plans`, …)."""


def help_text(roster: Roster, timezone: str) -> str:
    """The usage message."""
    coaches = ", ".join(f"`{coach.key}` ({coach.name})" for coach in roster.coaches)
    return HELP_TEXT.format(coaches=coaches, timezone=timezone)


def _charts(count: int) -> str:
    return f"{count} chart" if count == 1 else f"{count} charts"


def plan_confirmation(plan: PlanView, roster: Roster, *, verb: str) -> str:
    """`✅ Plan #12 saved — Coach D, 2026-11-26, 2 charts` plus a preview."""
    name = plan.coach_display_name or roster.name_of(plan.coach)
    return (
        f"✅ Plan #{plan.id} {verb} — {name}, {plan.date.isoformat()}, "
        f"{_charts(len(plan.charts))}\n> {preview(plan.plan)}"
    )


def plan_line(plan: PlanView, roster: Roster) -> str:
    """One plan in a listing."""
    name = plan.coach_display_name or roster.name_of(plan.coach)
    edited = " (edited)" if plan.edited else ""
    author = f" by {plan.author}" if plan.author else ""
    return (
        f"**#{plan.id}** {name} · {plan.date.isoformat()}{author} · "
        f"{_charts(len(plan.charts))}{edited}\n> {preview(plan.plan, 300)}"
    )


def plan_listing(title: str, plans: Sequence[PlanView], roster: Roster, empty: str) -> list[str]:
    """A titled list of plans, paginated into messages of at most 2,000 characters."""
    if not plans:
        return [f"{title}\n{empty}"]
    blocks = [title, *(plan_line(plan, roster) for plan in plans)]
    # Leave room for the page footer so a page never goes over Discord's limit.
    pages = paginate(blocks, limit=DISCORD_MESSAGE_LIMIT - 30)
    if len(pages) > 1:
        pages = [f"{page}\n*(page {n}/{len(pages)})*" for n, page in enumerate(pages, 1)]
    return pages


def queued(entry: OutboxEntry, what: str) -> str:
    """The API is down: the write is safe in the outbox."""
    return (
        f"⏳ The plan service is unreachable right now. Your {what} is queued "
        f"(outbox #{entry.id}) and will be delivered automatically when it is back."
    )


def rejected(entry: OutboxEntry, what: str) -> str:
    """The API refused the write."""
    if entry.error_status == 403:
        return f"❌ Not your plan: only its author or an admin can change it. ({entry.last_error})"
    if entry.error_status == 404:
        return f"❌ No such plan: {entry.last_error}"
    return f"❌ Your {what} was not saved: {entry.last_error}"


def settled_notice(entry: OutboxEntry, roster: Roster) -> str:
    """Told in the channel when a queued write is delivered (or refused) later."""
    if entry.status is Status.REJECTED:
        return f"❌ Queued write (outbox #{entry.id}) was refused: {entry.last_error}"
    result = entry.result or {}
    if entry.operation is Operation.CLEAR_DATE:
        return f"✅ Queued clear delivered: {result.get('deleted', 0)} plan(s) deleted."
    if "id" in result and "coach" in result and "date" in result:
        plan = PlanView.model_validate(result)
        verb = "deleted" if plan.deleted_at else "saved"
        return "(delivered from the queue) " + plan_confirmation(plan, roster, verb=verb)
    return f"✅ Queued write (outbox #{entry.id}) delivered."


def parse_result(entry: OutboxEntry) -> PlanView | None:
    """The plan an entry's delivery returned, if any."""
    result = entry.result or {}
    if "id" in result and "coach" in result:
        return PlanView.model_validate(result)
    return None


def day_title(prefix: str, day: dt.date) -> str:
    """`**Plans for 2026-11-26**`."""
    return f"**{prefix} {day.isoformat()}**"
