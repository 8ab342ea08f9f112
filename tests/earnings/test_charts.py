"""The server-drawn chart: stacked bars per service, an uptime line, accessible text."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.template.loader import render_to_string

from panel.earnings.charts import daily_chart, describe, nice_ceiling

from .conftest import make_node


def test_one_bar_segment_per_service_with_a_value():
    node = make_node(days=30)
    chart = daily_chart(node)
    # Day 0 has no GPU earnings, every other day has all three services.
    assert len(chart.bars) == 30 * 3 - 1
    assert {bar.css_class for bar in chart.bars} == {"series-vps", "series-cdn", "series-gpu"}
    assert len(chart.uptime_points.split()) == 30


def test_segments_stack_upwards_from_the_axis():
    node = make_node(days=3)
    chart = daily_chart(node)
    bottom = Decimal(chart.plot_bottom)
    day2 = [b for b in chart.bars if b.label.startswith("3 Oct")]
    assert [b.css_class for b in day2] == ["series-vps", "series-cdn", "series-gpu"]
    assert Decimal(day2[0].y) + Decimal(day2[0].height) == bottom
    for lower, upper in itertools.pairwise(day2):
        assert Decimal(upper.y) + Decimal(upper.height) == pytest.approx(
            Decimal(lower.y), abs=Decimal("0.02")
        )
    assert all(Decimal(b.y) >= chart.top for b in chart.bars)


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [
        (Decimal("3.7"), Decimal(4), Decimal(1)),
        (Decimal("0.37"), Decimal("0.4"), Decimal("0.1")),
        (Decimal(17), Decimal(20), Decimal(5)),
        (Decimal(0), Decimal(4), Decimal(1)),
    ],
)
def test_nice_axis(value, top, step):
    assert nice_ceiling(value) == (top, step)


def test_description_summarises_the_data():
    text = describe(make_node(days=30))
    assert "node-eu-central-1" in text
    assert "1 October 2026 to 30 October 2026" in text
    assert "VPS 30" in text and "CDN 7.5" in text
    assert "uptime" in text and "table below" in text


def test_empty_history_draws_nothing_but_says_so():
    chart = daily_chart(make_node(days=0))
    assert chart.empty and chart.bars == [] and chart.uptime_points == ""
    assert "No daily earnings" in chart.description


def test_svg_markup_is_accessible_and_csp_safe():
    chart = daily_chart(make_node(days=30))
    html = render_to_string("earnings/_chart.html", {"chart": chart})
    assert 'role="img"' in html
    assert 'aria-labelledby="earnings-chart-title earnings-chart-desc"' in html
    assert '<title id="earnings-chart-title">' in html
    assert '<desc id="earnings-chart-desc">' in html
    assert "style=" not in html and "<style" not in html and "<script" not in html
    assert html.count('class="series-gpu"') == 29
    assert 'class="uptime-line"' in html


def test_labels_are_escaped():
    node = make_node(days=2)
    object.__setattr__(node, "node_id", '<script>alert("x")</script>')
    html = render_to_string("earnings/_chart.html", {"chart": daily_chart(node)})
    assert "<script>" not in html


def test_table_columns_show_eight_decimals_so_points_line_up():
    from panel.earnings.templatetags.earnings_format import dcdn_column

    assert dcdn_column(Decimal("12.5")) == "12.50000000"
    assert dcdn_column(Decimal("1234.12345678")) == "1,234.12345678"
    assert dcdn_column(None) == ""
