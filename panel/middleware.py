"""Small cross-cutting response tweaks."""

from django.shortcuts import render


class MethodNotAllowedPageMiddleware:
    """Django's 405 for a wrong method (e.g. opening an action URL) has an empty body;
    give people a page that says what happened instead of a blank screen."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 405 and not response.content:
            page = render(request, "405.html", status=405)
            if response.has_header("Allow"):
                page["Allow"] = response["Allow"]
            return page
        return response
