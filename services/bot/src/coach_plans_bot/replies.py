"""The text of the bot's answers, built from plain data (no Discord objects)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from coach_plans_bot.api import PlanView
from coach_plans_bot.outbox import Operation, OutboxEntry, Status
from coach_plans_bot.parsing import DISCORD_MESSAGE_LIMIT, MAX_CHARTS, Roster, paginate, preview

HELP_TEXT = """**Coach Plans bot**
`!plan d: <text>` — save Coach D's plan for today (attach up to 10 chart images)
`!plan d 2026-11-26: <text>` — save a plan for another date
`!edit <id> <text>` — replace the text of your plan (admins: any plan)
`!delete <id>` — delete your plan (admins: any plan)
`!plans [date]` — every coach's plan for a date (default: today)
`!myplans [date]` — your plans (default: your recent plans)
`!history <coach> [days]` — a coach's recent plans (default 7 days, up to 365)
`!clear [date]` — admins: delete every plan of a date (default: today)
`!outbox [retry|drop <id>]` — admins: writes waiting for the plan service, and dead ones
`!help` — this message
Coaches: {coaches}. Dates are YYYY-MM-DD; "today" is in {timezone}.
Editing or deleting your `!plan` message updates or deletes the stored plan.
Each command is also a slash command (`/plan` takes up to {max_charts} chart attachments)."""


def help_text(roster: Roster, timezone: str) -> str:
    """The usage message."""
    coaches = ", ".join(f"`{coach.key}` ({coach.name})" for coach in roster.coaches)
    return HELP_TEXT.format(coaches=coaches, timezone=timezone, max_charts=MAX_CHARTS)


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


def plan_listing(title: str, plans: Sequence[PlanView], *, roster: Roster, empty: str) -> list[str]:
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


def dead(entry: OutboxEntry, what: str) -> str:
    """The API kept failing on the write: it waits for an admin."""
    times = f"{entry.attempts} time" + ("s" if entry.attempts != 1 else "")
    return (
        f"❌ Your {what} could not be delivered: the plan service failed on it {times} "
        f"({entry.last_error}). It is kept as outbox #{entry.id}; an admin can `!outbox retry {entry.id}`."
    )


def write_reply(entry: OutboxEntry, roster: Roster, *, verb: str, what: str) -> str:
    """The answer to a write: confirmation, queued, or why it was not stored."""
    if entry.status is Status.PENDING:
        return queued(entry, what)
    if entry.status is Status.REJECTED:
        return rejected(entry, what)
    if entry.status is Status.DEAD:
        return dead(entry, what)
    plan = parse_result(entry)
    if plan is None:
        return f"✅ Done ({what})."
    return plan_confirmation(plan, roster, verb=verb)


def settled_notice(entry: OutboxEntry, roster: Roster) -> str:
    """Told in the channel when a queued write is delivered (or refused) later."""
    if entry.status is Status.REJECTED:
        return f"❌ Queued write (outbox #{entry.id}) was refused: {entry.last_error}"
    if entry.status is Status.DEAD:
        return dead(entry, f"queued write (outbox #{entry.id})").replace("Your queued", "The queued")
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


def outbox_report(pending: Sequence[OutboxEntry], dead_letters: Sequence[OutboxEntry]) -> str:
    """`!outbox`: what waits for the API, and what waits for an admin."""
    lines = [f"**Outbox**: {len(pending)} pending, {len(dead_letters)} dead"]
    for entry in pending:
        error = f" — last error: {entry.last_error}" if entry.last_error else ""
        lines.append(f"⏳ #{entry.id} {_what(entry)}, {entry.attempts} attempt(s){error}")
    for entry in dead_letters:
        lines.append(f"💀 #{entry.id} {_what(entry)} {entry.status.value}: {entry.last_error}")
    if dead_letters:
        lines.append("`!outbox retry <id>` sends a dead entry again; `!outbox drop <id>` gives up on it.")
    return "\n".join(lines)


def _what(entry: OutboxEntry) -> str:
    payload = entry.payload
    if "coach" in payload and "date" in payload:
        return f"{entry.operation.value} {payload['coach']} {payload['date']}"
    if "plan_id" in payload:
        return f"{entry.operation.value} plan #{payload['plan_id']}"
    return entry.operation.value
