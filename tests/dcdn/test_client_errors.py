"""Translation of DCDN failures into typed errors (no HTTP involved)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from panel.dcdn.errors import (
    DEFAULT_RETRY_AFTER,
    BadRequest,
    Conflict,
    DcdnError,
    InsufficientCredits,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    error_from_response,
    infer_field,
    parse_retry_after,
)


def body(**fields) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (402, InsufficientCredits),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, Unavailable),
        (502, Unavailable),
        (503, Unavailable),
        (418, DcdnError),
        (302, DcdnError),
    ],
)
def test_each_status_maps_to_its_error_class(status, cls):
    error = error_from_response(status, body(error="x", message="m"), {})
    assert type(error) is cls
    assert error.status == status


def test_message_and_code_come_from_the_standard_error_body():
    error = error_from_response(402, body(error="insufficient_credits", message="Need 12"), {})
    assert error.message == "Need 12"
    assert error.code == "insufficient_credits"


def test_message_falls_back_to_detail_then_error():
    assert error_from_response(404, body(detail="No such thing"), {}).message == "No such thing"
    assert error_from_response(404, body(error="not_found"), {}).message == "not_found"


def test_plain_text_body_is_the_message():
    error = error_from_response(503, "Service down for maintenance", {})
    assert isinstance(error, Unavailable)
    assert error.message == "Service down for maintenance"
    assert error.code is None


def test_html_error_page_falls_back_to_the_default_message():
    error = error_from_response(502, "<html><body>Bad gateway</body></html>", {})
    assert error.message == Unavailable.default_message


def test_empty_or_non_object_body_gives_the_default_message():
    assert error_from_response(404, "", {}).message == NotFound.default_message
    assert error_from_response(400, "[1, 2]", {}).message == BadRequest.default_message


def test_explicit_field_key_wins():
    error = error_from_response(400, body(message="Invalid plan", field="region"), {})
    assert error.field == "region"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Unknown plan 'x9'", "plan"),
        ("Unknown image 'beos'", "image"),
        ("Unknown region 'mars-1'", "region"),
        ("cpu_type must match the plan", "cpu_type"),
        ("Invalid SSH key at position 1", "ssh_keys"),
        ("Amount is below the minimum payout", "amount"),
        ("Malformed wallet address", "wallet_address"),
        ("Name already in use", "name"),
        ("Region has too few nodes for redundant", "region"),
    ],
)
def test_field_is_inferred_from_the_message_for_400_and_409(message, field):
    status = 409 if "in use" in message else 400
    assert error_from_response(status, body(message=message), {}).field == field


def test_field_inference_respects_the_fields_the_request_sent():
    error = error_from_response(400, body(message="Invalid public key"), {}, fields=("public_key",))
    assert error.field == "public_key"
    assert error_from_response(409, body(message="Instance name x"), {}, fields=()).field is None


def test_no_field_is_inferred_for_other_statuses():
    assert error_from_response(404, body(message="plan not found"), {}).field is None


def test_infer_field_does_not_match_inside_other_words():
    assert infer_field("hostname is taken") is None
    assert infer_field("planet") is None


def test_retry_after_in_seconds():
    error = error_from_response(429, body(message="slow down"), {"Retry-After": "7"})
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7
    assert error.retryable


def test_retry_after_as_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    error = error_from_response(429, "", {"Retry-After": format_datetime(when, usegmt=True)})
    assert 28 <= error.retry_after <= 30


def test_missing_retry_after_uses_the_default():
    assert error_from_response(429, "", {}).retry_after == DEFAULT_RETRY_AFTER


def test_retry_after_from_the_body_when_no_header():
    assert error_from_response(429, body(retry_after=3), {}).retry_after == 3


def test_parse_retry_after_edge_cases():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0
    assert parse_retry_after("Tue, 01 Jan 2030 00:00:10 GMT", now=now) == 10
    assert parse_retry_after("Mon, 31 Dec 2029 23:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_long_messages_are_truncated():
    assert len(error_from_response(500, "x" * 5000, {}).message) <= 300
