"""Parsing DCDN answers into declared types: tolerant of extras, strict on what is needed."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from panel.dcdn.errors import MalformedResponse
from panel.dcdn.types import Catalog, EarningsSummary, Image, Instance, Plan, Region, Template

INSTANCE = {
    "id": "5f1c",
    "name": "web-1",
    "status": "running",
    "plan": "nano",
    "region": "eu-central",
    "node": "node-eu-west-2",
    "monthly_cost_usd": 2.5,
    "created_at": "2026-01-02T03:04:05Z",
    "usage": {"cpu_percent": 12.5, "ram_used_mb": 300, "disk_used_gb": 4.2},
    "something_new": {"nested": True},
}


def test_unknown_fields_are_ignored_and_missing_optional_ones_defaulted():
    instance = Instance.from_api(INSTANCE)
    assert instance.node == "node-eu-west-2"  # shown as given, even outside the region
    assert instance.ssh_port is None
    assert instance.usage.bandwidth_used_gb == Decimal(0)
    assert instance.created_at.year == 2026


def test_a_missing_required_field_is_malformed():
    with pytest.raises(MalformedResponse):
        Instance.from_api({"name": "x", "status": "running"})
    with pytest.raises(MalformedResponse):
        Plan.from_api({"id": "nano"})  # no price


def test_non_numeric_amounts_are_malformed():
    with pytest.raises(MalformedResponse):
        EarningsSummary.from_api({"total_earned": "lots", "available": 1})
    with pytest.raises(MalformedResponse):
        EarningsSummary.from_api({"total_earned": True, "available": 1})


def test_instance_round_trips_through_its_cache_form():
    instance = Instance.from_api(INSTANCE)
    raw = json.loads(json.dumps(instance.to_cache()))
    assert Instance.from_cache(raw) == instance


def test_catalog_round_trips_through_json_with_exact_decimals():
    catalog = Catalog(
        plans=[Plan("nano", 1, 512, 10, Decimal("0.5"), Decimal("2.10"), "shared", False)],
        images=[Image("debian-12", "Debian 12")],
        regions=[Region("sa-east", 3)],
        templates=[Template("dev", "Dev box", "Cheap", "debian-12", "nano", "shared")],
    )
    raw = json.loads(json.dumps(catalog.to_cache()))
    restored = Catalog.from_cache(raw)
    assert restored == catalog
    assert restored.plan("nano").price_usd == Decimal("2.10")


def test_a_catalog_cache_entry_of_the_wrong_shape_is_malformed():
    with pytest.raises(MalformedResponse):
        Catalog.from_cache({"plans": []})
