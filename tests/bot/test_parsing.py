"""Parsing and reply shaping as plain functions, without Discord."""

from __future__ import annotations

import datetime as dt

import pytest

from coach_plans_bot.parsing import (
    Attachment,
    BadDateError,
    BadDaysError,
    Coach,
    EmptyPlanError,
    PlanTooLongError,
    Roster,
    UnknownCoachError,
    UsageError,
    paginate,
    parse_date,
    parse_days,
    parse_plan_args,
    preview,
    select_charts,
    split_message,
)

TODAY = dt.date(2026, 11, 25)
ROSTER = Roster()


@pytest.mark.parametrize(
    ("args", "coach", "day", "text"),
    [
        ("d: NVDA above 950", "coach_d", TODAY, "NVDA above 950"),
        ("D: x", "coach_d", TODAY, "x"),
        ("coach_i: x", "coach_i", TODAY, "x"),
        ("s 2026-11-26: AAPL", "coach_s", dt.date(2026, 11, 26), "AAPL"),
        ("n 2026-11-26 : spaced", "coach_n", dt.date(2026, 11, 26), "spaced"),
        ("d: levels: 950, 968: targets", "coach_d", TODAY, "levels: 950, 968: targets"),
        ("d:\nline one\nline two  ", "coach_d", TODAY, "line one\nline two"),
    ],
)
def test_parse_plan_args(args: str, coach: str, day: dt.date, text: str) -> None:
    request = parse_plan_args(args, roster=ROSTER, today=TODAY)

    assert (request.coach.coach, request.date, request.text) == (coach, day, text)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("x: text", UnknownCoachError),
        ("d 2026-02-30: text", BadDateError),
        ("d 11/26/2026: text", BadDateError),
        ("d:   ", EmptyPlanError),
        ("d: " + "x" * 10_001, PlanTooLongError),
        ("d NVDA above 950", UsageError),
        ("", UsageError),
    ],
)
def test_parse_plan_args_errors(args: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_plan_args(args, roster=ROSTER, today=TODAY)


def test_plan_text_of_exactly_10000_characters_is_accepted() -> None:
    assert len(parse_plan_args("d: " + "x" * 10_000, roster=ROSTER, today=TODAY).text) == 10_000


def test_roster_comes_from_configuration() -> None:
    roster = Roster((Coach(coach="coach_t", key="t", name="Coach T"),))

    assert roster.resolve("T").name == "Coach T"
    with pytest.raises(UnknownCoachError, match=r"Known coaches: t\."):
        roster.resolve("d")
    assert roster.name_of("coach_t") == "Coach T"
    assert roster.name_of("coach_zz") == "coach_zz"


def test_parse_date() -> None:
    assert parse_date(" 2024-02-29 ") == dt.date(2024, 2, 29)
    with pytest.raises(BadDateError, match="day is out of range"):
        parse_date("2026-02-29")


@pytest.mark.parametrize(("raw", "days"), [(None, 7), (1, 1), (365, 365)])
def test_parse_days(raw: int | None, days: int) -> None:
    assert parse_days(raw) == days


@pytest.mark.parametrize("raw", [0, -1, 366])
def test_parse_days_out_of_range(raw: int) -> None:
    with pytest.raises(BadDaysError):
        parse_days(raw)


def chart(name: str, content_type: str | None = None) -> Attachment:
    return Attachment(url=f"https://cdn.discordapp.com/a/{name}", filename=name, content_type=content_type)


def test_select_charts_keeps_ten_images_in_order_and_warns_about_the_rest() -> None:
    images = [chart(f"c{n}.PNG") for n in range(12)]
    attachments = [chart("notes.txt"), *images[:5], chart("clip.mp4", "video/mp4"), *images[5:]]

    selection = select_charts(attachments)

    assert list(selection.charts) == images[:10]
    assert selection.warnings == (
        "Skipped `notes.txt`: not an image (PNG, JPG, GIF or WEBP only).",
        "Skipped `clip.mp4`: not an image (PNG, JPG, GIF or WEBP only).",
        "Skipped `c10.PNG`: at most 10 charts per plan.",
        "Skipped `c11.PNG`: at most 10 charts per plan.",
    )


@pytest.mark.parametrize(
    ("attachment", "image"),
    [
        (chart("a.jpeg"), True),
        (chart("a.gif"), True),
        (chart("a.webp"), True),
        (chart("noext"), False),
        (chart("a.bin", "image/png; charset=binary"), True),
        (chart("a.png", "application/pdf"), False),
        (Attachment(url="https://x/y/chart.jpg?ex=1", filename=""), True),
    ],
)
def test_image_detection(attachment: Attachment, image: bool) -> None:
    assert bool(select_charts([attachment]).charts) is image


def test_split_message_respects_the_limit_and_keeps_everything() -> None:
    text = "\n".join(f"line {n} " + "x" * (n * 37 % 300) for n in range(200)) + "\n" + "y" * 4500

    chunks = split_message(text)

    assert all(len(chunk) <= 2000 for chunk in chunks)
    assert "\n".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_split_message_short_text_is_one_message() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("") == [""]
    with pytest.raises(ValueError, match="limit"):
        split_message("x", limit=0)


def test_paginate_keeps_blocks_whole_when_they_fit() -> None:
    blocks = [f"block {n}\n" + "z" * 600 for n in range(7)]

    pages = paginate(blocks, limit=2000)

    assert [page.count("block") for page in pages] == [3, 3, 1]
    assert all(len(page) <= 2000 for page in pages)


def test_preview_is_one_line_and_cut() -> None:
    assert preview("a\n  b") == "a b"
    assert preview("word " * 100, limit=20) == "word word word word…"


def test_attachments_the_api_cannot_store_are_skipped_with_the_reason() -> None:
    ok = Attachment(
        url="https://cdn.discordapp.com/a/chart.png", filename="chart.png", content_type="image/png"
    )
    long_link = Attachment(url="https://cdn.discordapp.com/" + "x" * 2048 + ".png", filename="long.png")
    not_http = Attachment(url="ftp://cdn.discordapp.com/a/c.png", filename="c.png")
    long_name = Attachment(url="https://cdn.discordapp.com/a/n.png", filename="n" * 252 + ".png")
    jpg = Attachment(url="https://cdn.discordapp.com/a/j.jpg", filename="j.jpg", content_type="image/JPG")

    selection = select_charts([ok, long_link, not_http, long_name, jpg])

    assert [chart.filename for chart in selection.charts] == ["chart.png", "j.jpg"]
    assert selection.charts[1].content_type == "image/jpeg"
    assert selection.warnings == (
        "Skipped `long.png`: its link is not one the plan service can store.",
        "Skipped `c.png`: its link is not one the plan service can store.",
        f"Skipped `{long_name.filename}`: its file name is not one the plan service can store.",
    )
