"""The per-owner snapshot (single-flight, one upstream list per interval) and the
selectors the pages read."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.http import Http404

from panel.dcdn.errors import RateLimited, Unavailable
from panel.dcdn.types import Catalog, Plan
from panel.instances import selectors, snapshot
from panel.instances.models import Operation

pytestmark = pytest.mark.django_db


def test_concurrent_readers_cause_one_upstream_list(owner, fake_dcdn):
    fake_dcdn.add("web-1")
    fake_dcdn.slow["list_instances"] = 0.3
    barrier = threading.Barrier(8)
    results = []

    def read():
        barrier.wait()
        results.append(snapshot.snapshot_get(user=owner))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert fake_dcdn.calls["list_instances"] == 1
    assert len(results) == 8
    # Every later reader within the interval gets the refreshed list.
    assert [i.name for i in snapshot.snapshot_get(user=owner).instances] == ["web-1"]
    assert fake_dcdn.calls["list_instances"] == 1


def test_snapshot_refreshes_at_most_once_per_interval(owner, fake_dcdn, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.3
    for _ in range(5):
        snapshot.snapshot_get(user=owner)
    assert fake_dcdn.calls["list_instances"] == 1
    time.sleep(0.35)
    for _ in range(5):
        snapshot.snapshot_get(user=owner)
    assert fake_dcdn.calls["list_instances"] == 2


def test_a_caller_may_accept_an_older_snapshot_but_never_force_a_newer_one(
    owner, fake_dcdn, settings
):
    settings.DCDN_SNAPSHOT_SECONDS = 0.2
    snapshot.snapshot_get(user=owner)
    time.sleep(0.25)
    snapshot.snapshot_get(user=owner, refresh_if_older_than=60)
    assert fake_dcdn.calls["list_instances"] == 1
    snapshot.snapshot_get(user=owner, refresh_if_older_than=0)
    assert fake_dcdn.calls["list_instances"] == 2
    snapshot.snapshot_get(user=owner, refresh_if_older_than=0)
    assert fake_dcdn.calls["list_instances"] == 2


def test_a_stale_mark_refreshes_at_the_next_interval_whatever_the_reader_accepts(
    owner, fake_dcdn, settings
):
    settings.DCDN_SNAPSHOT_SECONDS = 0.2
    snapshot.snapshot_get(user=owner)
    snapshot.snapshot_mark_stale(user=owner)
    snapshot.snapshot_get(user=owner, refresh_if_older_than=60)
    assert fake_dcdn.calls["list_instances"] == 1  # not before the interval
    time.sleep(0.25)
    snapshot.snapshot_get(user=owner, refresh_if_older_than=60)
    assert fake_dcdn.calls["list_instances"] == 2


def test_failed_refresh_keeps_the_old_list_and_reports_the_error(owner, fake_dcdn, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.2
    fake_dcdn.add("web-1")
    first = snapshot.snapshot_get(user=owner)
    time.sleep(0.25)
    fake_dcdn.fail_next["list_instances"] = [Unavailable("down")]
    failed = snapshot.snapshot_get(user=owner)
    assert [i.name for i in failed.instances] == ["web-1"]
    assert isinstance(failed.error, Unavailable)
    assert failed.fetched_at == first.fetched_at
    # A failing upstream is not asked again before the interval is over.
    snapshot.snapshot_get(user=owner)
    assert fake_dcdn.calls["list_instances"] == 2
    time.sleep(0.25)
    recovered = snapshot.snapshot_get(user=owner)
    assert recovered.error is None and recovered.fetched_at > first.fetched_at


def test_rate_limited_refresh_holds_off_for_retry_after(owner, fake_dcdn, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.1
    fake_dcdn.fail_next["list_instances"] = [RateLimited(retry_after=30)]
    assert isinstance(snapshot.snapshot_get(user=owner).error, RateLimited)
    time.sleep(0.15)
    snapshot.snapshot_get(user=owner)
    assert fake_dcdn.calls["list_instances"] == 1
    assert snapshot.snapshot_wait_seconds(user=owner) > 25


def test_snapshots_are_per_owner(owner, outsider, fake_dcdn):
    snapshot.snapshot_get(user=owner)
    snapshot.snapshot_get(user=outsider)
    assert fake_dcdn.calls["list_instances"] == 2


def test_web_refreshes_do_not_wait_for_budget(owner, fake_dcdn):
    snapshot.snapshot_get(user=owner)
    assert fake_dcdn.clients_made == [0]


def test_a_new_token_drops_the_snapshot(owner, fake_dcdn):
    from accounts.services import credential_store_unverified

    fake_dcdn.add("web-1")
    snapshot.snapshot_get(user=owner)
    credential_store_unverified(user=owner, token="another-token-123")
    assert snapshot.snapshot_peek(user=owner).instances == []


def test_missing_token_is_reported_not_raised(owner, monkeypatch):
    from accounts.errors import TokenMissing

    def no_token(user, *, max_wait=None):
        raise TokenMissing()

    monkeypatch.setattr(snapshot, "client_for", no_token)
    assert isinstance(snapshot.snapshot_get(user=owner).error, TokenMissing)


# --- instance_list ---------------------------------------------------------------------------


@pytest.fixture
def fleet(owner, fake_dcdn):
    fake_dcdn.add(
        "alpha",
        status="running",
        region="eu-central",
        ip_address="10.0.0.20",
        monthly_cost_usd=Decimal("10.00"),
        created_at=datetime(2024, 3, 1, tzinfo=UTC),
    )
    fake_dcdn.add(
        "Beta",
        status="stopped",
        region="us-east",
        ip_address="10.0.0.3",
        monthly_cost_usd=Decimal("5.50"),
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    fake_dcdn.add(
        "gamma",
        status="creating",
        region="eu-central",
        ip_address="192.168.1.1",
        monthly_cost_usd=Decimal("20.00"),
        created_at=None,
    )
    return fake_dcdn


def names(listing) -> list[str]:
    return [row.name for row in listing.rows]


def test_list_totals_counts_and_choices(owner, fleet):
    listing = selectors.instance_list(user=owner)
    assert names(listing) == ["alpha", "Beta", "gamma"]
    assert listing.total_monthly_usd == Decimal("35.50")
    assert listing.counts_by_status == {"creating": 1, "running": 1, "stopped": 1}
    assert listing.regions == ["eu-central", "us-east"]
    assert listing.statuses == ["creating", "running", "stopped"]
    assert listing.any_transitional is True
    assert listing.snapshot.fetched_at is not None


def test_list_filters_by_name_or_ip_status_and_region(owner, fleet):
    assert names(selectors.instance_list(user=owner, q="BET")) == ["Beta"]
    assert names(selectors.instance_list(user=owner, q="192.168")) == ["gamma"]
    assert names(selectors.instance_list(user=owner, status="running")) == ["alpha"]
    assert names(selectors.instance_list(user=owner, region="eu-central")) == ["alpha", "gamma"]
    filtered = selectors.instance_list(user=owner, q="nothing")
    assert filtered.rows == [] and filtered.total_monthly_usd == Decimal("35.50")


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["alpha", "Beta", "gamma"]),
        ("-name", ["gamma", "Beta", "alpha"]),
        ("cost", ["Beta", "alpha", "gamma"]),
        ("-cost", ["gamma", "alpha", "Beta"]),
        ("ip", ["Beta", "alpha", "gamma"]),  # numerically, not as text
        ("created", ["Beta", "alpha", "gamma"]),  # unknown dates last
        ("-created", ["alpha", "Beta", "gamma"]),
        ("status", ["gamma", "alpha", "Beta"]),
        ("region", ["alpha", "gamma", "Beta"]),
        ("bogus", ["alpha", "Beta", "gamma"]),
        ("-", ["alpha", "Beta", "gamma"]),
    ],
)
def test_list_sorts(owner, fleet, sort, expected):
    assert names(selectors.instance_list(user=owner, sort=sort)) == expected


def test_list_totals_what_is_shown_apart_from_the_whole_fleet(owner, fleet):
    everything = selectors.instance_list(user=owner)
    assert everything.shown_monthly_usd == everything.total_monthly_usd == Decimal("35.50")
    filtered = selectors.instance_list(user=owner, region="eu-central")
    assert filtered.shown_monthly_usd == Decimal("30.00")
    assert filtered.total_monthly_usd == Decimal("35.50")  # what the home page shows
    assert selectors.instance_list(user=owner, q="nothing").shown_monthly_usd == Decimal(0)


def _plan(plan_id: str, price: str) -> Plan:
    return Plan(
        id=plan_id,
        vcpus=1,
        ram_mb=512,
        disk_gb=10,
        bandwidth_tb=Decimal(1),
        price_usd=Decimal(price),
        cpu_type="shared",
    )


@pytest.fixture
def plans_fleet(owner, fake_dcdn):
    fake_dcdn.add("a", plan="s-medium", monthly_cost_usd=Decimal("10.00"))
    fake_dcdn.add("b", plan="nano", monthly_cost_usd=Decimal("2.00"))
    fake_dcdn.add("c", plan="s-small", monthly_cost_usd=Decimal("10.00"), redundant=True)
    fake_dcdn.add("d", plan="", monthly_cost_usd=Decimal("1.00"))
    return fake_dcdn


def test_plan_sort_follows_the_cached_catalogs_prices(owner, plans_fleet, monkeypatch):
    catalog = Catalog(
        plans=[_plan("nano", "2.00"), _plan("s-small", "5.00"), _plan("s-medium", "10.00")],
        images=[],
        regions=[],
        templates=[],
    )
    monkeypatch.setattr(selectors, "catalog_cached", lambda: catalog)
    assert names(selectors.instance_list(user=owner, sort="plan")) == ["b", "c", "a", "d"]
    assert names(selectors.instance_list(user=owner, sort="-plan")) == ["a", "c", "b", "d"]
    assert plans_fleet.calls.get("list_plans", 0) == 0


def test_plan_sort_without_a_catalog_uses_each_instances_cost_per_node(
    owner, plans_fleet, monkeypatch
):
    monkeypatch.setattr(selectors, "catalog_cached", lambda: None)
    # c is redundant: $10.00 for two nodes is $5.00 a node, cheaper than a's $10.00.
    assert names(selectors.instance_list(user=owner, sort="plan")) == ["b", "c", "a", "d"]


def test_list_of_an_owner_without_instances(owner, fake_dcdn):
    listing = selectors.instance_list(user=owner)
    assert listing.rows == [] and listing.total_monthly_usd == Decimal(0)
    assert listing.any_transitional is False


# --- instance detail ---------------------------------------------------------------------


def test_detail_is_cached_so_many_tabs_cost_one_call(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    for _ in range(5):
        assert selectors.instance_for_user(user=owner, instance_id=target.id).name == "web-1"
    assert fake_dcdn.calls["get_instance"] == 1


def test_concurrent_detail_reads_cause_one_call(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    fake_dcdn.slow["get_instance"] = 0.3
    barrier = threading.Barrier(5)
    found = []

    def read():
        barrier.wait()
        found.append(selectors.instance_for_user(user=owner, instance_id=target.id).id)

    threads = [threading.Thread(target=read) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert found == [target.id] * 5
    assert fake_dcdn.calls["get_instance"] == 1


def test_missing_or_someone_elses_instance_is_404(owner, fake_dcdn):
    with pytest.raises(Http404):
        selectors.instance_for_user(user=owner, instance_id="not-mine")
    with pytest.raises(Http404):
        selectors.instance_for_user(user=owner, instance_id="")


def test_detail_errors_other_than_not_found_propagate(owner, fake_dcdn):
    fake_dcdn.fail_next["get_instance"] = [Unavailable("down")]
    with pytest.raises(Unavailable):
        selectors.instance_for_user(user=owner, instance_id="x")


def test_instance_from_snapshot_never_calls_dcdn(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    assert selectors.instance_from_snapshot(user=owner, instance_id=target.id) is None
    snapshot.snapshot_get(user=owner)
    calls = sum(fake_dcdn.calls.values())
    assert selectors.instance_from_snapshot(user=owner, instance_id=target.id).name == "web-1"
    assert sum(fake_dcdn.calls.values()) == calls


# --- operations ---------------------------------------------------------------------------


def make_operation(user, **fields) -> Operation:
    defaults = {"kind": "create", "instance_name": "web-1"}
    return Operation.objects.create(
        owner=user, owner_key=f"user:{user.pk}", **{**defaults, **fields}
    )


def test_operation_selectors_only_show_the_owners(owner, outsider):
    mine = make_operation(owner, instance_id="i-1")
    finished = make_operation(owner, state="succeeded", instance_name="web-2", instance_id="i-1")
    theirs = make_operation(outsider)

    assert list(selectors.operations_for_user(user=owner)) == [finished, mine]
    assert list(selectors.operations_for_user(user=owner, limit=1)) == [finished]
    assert list(selectors.operations_active_for_user(user=owner)) == [mine]
    assert selectors.operation_for_user(user=owner, operation_id=mine.pk) == mine
    assert selectors.operation_latest_for_instance(user=owner, instance_id="i-1") == finished
    assert selectors.operation_latest_for_instance(user=owner, instance_id="i-9") is None
    with pytest.raises(Http404):
        selectors.operation_for_user(user=owner, operation_id=theirs.pk)
    with pytest.raises(Http404):
        selectors.operation_for_user(user=owner, operation_id="abc")


def test_step_indicator_and_labels(owner):
    operation = make_operation(owner)
    assert operation.steps() == [
        ("Submitted", "current"),
        ("Creating", "pending"),
        ("Running", "pending"),
    ]
    operation.state, operation.step = "submitted", "creating"
    assert operation.steps() == [
        ("Submitted", "done"),
        ("Creating", "current"),
        ("Running", "pending"),
    ]
    assert operation.step_label == "Creating"
    operation.state = "failed"
    assert [s for _, s in operation.steps()] == ["done", "failed", "pending"]
    assert operation.steps()[1] == ("Creating failed", "failed")
    assert operation.step_label == "Creating failed"
    operation.step = "submitted"
    assert operation.steps()[0] == ("Submission failed", "failed")
    assert operation.step_label == "Submission failed"
    operation.step = "creating"
    assert operation.kind_label == "Create" and operation.state_label == "Failed"
    assert operation.is_finished and not operation.is_active
    destroy = make_operation(owner, kind="destroy", state="succeeded", step="gone")
    assert destroy.steps() == [("Submitted", "done"), ("Destroying", "done"), ("Gone", "done")]
