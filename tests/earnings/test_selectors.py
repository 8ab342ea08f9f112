"""Earnings reads with the DCDN client patched at the boundary: caching per owner,
JSON-safe cache entries, refresh limits, the home card."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.http import Http404

from accounts.errors import TokenMissing
from accounts.models import owner_key_for
from panel.dcdn.errors import RateLimited, Unavailable
from panel.earnings import selectors

from .conftest import make_summary

pytestmark = pytest.mark.django_db


def test_summary_is_fetched_once_then_served_from_the_cache(user, fake_dcdn):
    first = selectors.earnings_summary_for(user=user)
    second = selectors.earnings_summary_for(user=user)
    assert fake_dcdn.count("earnings_summary") == 1
    assert second.value == first.value
    assert second.value.available == Decimal("250.12345678")
    assert isinstance(second.value.available, Decimal)


def test_cache_is_per_owner(user, outsider, fake_dcdn):
    selectors.earnings_summary_for(user=user)
    selectors.earnings_summary_for(user=outsider)
    assert fake_dcdn.count("earnings_summary") == 2


def test_force_reads_again(user, fake_dcdn):
    selectors.earnings_summary_for(user=user)
    selectors.earnings_summary_for(user=user, force=True)
    assert fake_dcdn.count("earnings_summary") == 2


def test_refresh_is_ignored_for_figures_younger_than_the_floor(user, fake_dcdn, monkeypatch):
    selectors.earnings_summary_for(user=user)
    selectors.earnings_summary_for(user=user, refresh=True)
    assert fake_dcdn.count("earnings_summary") == 1
    monkeypatch.setattr(selectors, "MIN_REFRESH_SECONDS", 0)
    selectors.earnings_summary_for(user=user, refresh=True)
    assert fake_dcdn.count("earnings_summary") == 2


def test_cache_entries_are_json_with_amounts_as_strings(user, fake_dcdn):
    selectors.earnings_summary_for(user=user)
    selectors.node_earnings_for(user=user, node_id="node-eu-central-1")
    selectors.token_info_cached(user=user)
    owner = owner_key_for(user)
    for key in (
        selectors._summary_key(owner),
        selectors._node_key(owner, "node-eu-central-1"),
        selectors.TOKEN_INFO_KEY,
    ):
        entry = cache.get(key)
        assert isinstance(entry, dict)
        assert json.loads(json.dumps(entry)) == entry  # plain JSON, no pickled objects
    raw = cache.get(selectors._summary_key(owner))["raw"]
    assert raw["available"] == "250.12345678"
    assert raw["nodes"][0]["earned_30d"] == "45.5"


def test_an_unreadable_cache_entry_counts_as_cold(user, fake_dcdn):
    cache.set(selectors._summary_key(owner_key_for(user)), {"raw": {"bad": 1}, "fetched_at": "x"})
    assert selectors.earnings_summary_for(user=user).value.available == Decimal("250.12345678")
    assert fake_dcdn.count("earnings_summary") == 1


def test_age_is_reported(user, fake_dcdn):
    cached = selectors.earnings_summary_for(user=user)
    assert cached.age_seconds == 0
    old = selectors.Cached(value=1, fetched_at=datetime.now(UTC) - timedelta(seconds=42))
    assert old.age_seconds == 42


def test_foreign_or_missing_node_is_404(user, fake_dcdn):
    with pytest.raises(Http404):
        selectors.node_earnings_for(user=user, node_id="node-of-someone-else")


def test_node_ids_with_odd_characters_make_valid_keys(user, fake_dcdn):
    with pytest.raises(Http404):
        selectors.node_earnings_for(user=user, node_id="a b/../c\u00e9" * 30)


def test_token_info_is_cached_across_users(user, outsider, fake_dcdn):
    selectors.token_info_cached(user=user)
    info = selectors.token_info_cached(user=outsider)
    assert fake_dcdn.count("token_info") == 1
    assert info.value.price_usd == Decimal("0.0425")


def test_token_change_forgets_the_owners_figures(user, fake_dcdn):
    from accounts.models import DcdnCredential
    from accounts.signals import credential_changed

    selectors.earnings_summary_for(user=user)
    selectors.node_earnings_for(user=user, node_id="node-eu-central-1")
    credential_changed.send(
        sender=DcdnCredential, owner_key=owner_key_for(user), user=user, action="saved"
    )
    selectors.earnings_summary_for(user=user)
    selectors.node_earnings_for(user=user, node_id="node-eu-central-1")
    assert fake_dcdn.count("earnings_summary") == 2
    assert fake_dcdn.count("node_earnings") == 2


# --- home card -------------------------------------------------------------------------------


def test_home_card_for_an_operator(user, fake_dcdn):
    card = selectors.earnings_home_card(user=user)
    assert card["available"] == Decimal("250.12345678")
    assert card["node_count"] == 2
    assert card["recent_total"] is None  # node data not cached yet: loaded by the fragment
    assert fake_dcdn.calls == [("earnings_summary",)]


def test_home_card_uses_cached_node_data_for_the_last_seven_days(user, fake_dcdn):
    for node_id in fake_dcdn.nodes:
        selectors.node_earnings_for(user=user, node_id=node_id)
    calls = len(fake_dcdn.calls)
    card = selectors.earnings_home_card(user=user)
    expected = sum(
        (d.amount for node in fake_dcdn.nodes.values() for d in node.daily[-7:]), Decimal(0)
    )
    assert card["recent_total"] == expected
    assert len(fake_dcdn.calls) == calls + 1  # the summary only


def test_home_card_is_none_without_nodes(user, fake_dcdn):
    fake_dcdn.summary = make_summary(nodes=())
    assert selectors.earnings_home_card(user=user) is None


@pytest.mark.parametrize(
    "error", [TokenMissing(), Unavailable(), RateLimited(retry_after=3), RuntimeError("bug")]
)
def test_home_card_never_raises(user, fake_dcdn, error):
    fake_dcdn.errors["earnings_summary"] = error
    assert selectors.earnings_home_card(user=user) is None


def test_home_card_for_an_anonymous_user_is_none():
    from django.contrib.auth.models import AnonymousUser

    assert selectors.earnings_home_card(user=AnonymousUser()) is None


def test_recent_earnings_reads_each_node_once(user, fake_dcdn):
    summary = selectors.earnings_summary_for(user=user).value
    total, _ = selectors.recent_earnings_for(user=user, summary=summary)
    again, _ = selectors.recent_earnings_for(user=user, summary=summary)
    assert total == again > 0
    assert fake_dcdn.count("node_earnings") == 2


def test_home_card_does_not_ask_again_right_after_a_failure(user, fake_dcdn):
    from panel.dcdn.errors import Unauthorized

    fake_dcdn.errors["earnings_summary"] = Unauthorized()
    assert selectors.earnings_home_card(user=user) is None
    assert selectors.earnings_home_card(user=user) is None
    assert fake_dcdn.count("earnings_summary") == 1
