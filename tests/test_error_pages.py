"""The panel's own error pages keep the site's look and navigation."""

import pytest
from django.contrib.auth import get_user_model


@pytest.mark.django_db
def test_a_missing_page_is_a_styled_404_with_navigation(client):
    user = get_user_model().objects.create_user("owner", password="correct-horse-battery-7")
    client.force_login(user)
    response = client.get("/earnings/payouts/999999/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found" in html and 'href="/instances/"' in html and "panel.css" in html


def test_the_500_page_needs_no_request_context():
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "Something went wrong" in html and "panel.css" in html


@pytest.mark.django_db
def test_opening_an_action_url_explains_instead_of_a_blank_405(client):
    user = get_user_model().objects.create_user("owner", password="correct-horse-battery-7")
    client.force_login(user)
    response = client.get("/instances/some-id/stop/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "Not available this way" in response.content.decode()
