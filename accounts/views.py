"""Thin views: parse input, call one service, render. Logic lives in services.py."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods

from . import services, throttle
from .debug import secret_error_reports
from .forms import ReauthForm, TokenForm, describe_fields_with
from .reauth import reauth_is_fresh, reauth_mark, reauth_redirect, reauth_seconds_left, reauth_url


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


def _is_htmx(request) -> bool:
    # request.htmx may be missing if a failure happens before django-htmx ran.
    return bool(getattr(request, "htmx", False)) or request.headers.get("HX-Request") == "true"


# --- Login, logout, password ---------------------------------------------------------


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
@method_decorator(secret_error_reports, name="dispatch")
class PanelLoginView(auth_views.LoginView):
    """Django's login (it rotates the session) behind a per-(username, address) lock."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        self.throttle_username = request.POST.get("username", "")[:150]
        self.throttle_address = throttle.client_address(request)
        remaining = throttle.lock_remaining(
            username=self.throttle_username, address=self.throttle_address
        )
        if remaining:
            # Refused before the password is looked at: a lock is not an oracle.
            form = self.get_form_class()(request, initial={"username": self.throttle_username})
            describe_fields_with(form, "locked-alert")
            context = self.get_context_data(form=form, locked_minutes=_minutes(remaining))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(remaining)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        throttle.record_success(username=self.throttle_username, address=self.throttle_address)
        return super().form_valid(form)

    def form_invalid(self, form):
        throttle.record_failure(username=self.throttle_username, address=self.throttle_address)
        if form.non_field_errors():
            describe_fields_with(form, "form-errors")
        return super().form_invalid(form)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["signup_enabled"] = settings.ACCOUNTS_ALLOW_SIGNUP
        return context


class PanelLogoutView(auth_views.LogoutView):
    """POST only (Django's default); flushes the session."""


@method_decorator(secret_error_reports, name="dispatch")
class PanelPasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change_form.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PanelPasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@sensitive_post_parameters("password1", "password2")
@secret_error_reports
@never_cache
@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.ACCOUNTS_ALLOW_SIGNUP:
        raise Http404("Sign-up is turned off.")
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = UserCreationForm(request.POST or None, label_suffix="")
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("accounts:token")
    return render(request, "accounts/signup.html", {"form": form})


# --- Re-authentication -------------------------------------------------------------------


def _safe_next(request, fallback: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


@sensitive_post_parameters("password")
@secret_error_reports
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def reauth(request):
    next_url = _safe_next(request, resolve_url(settings.LOGIN_REDIRECT_URL))
    username = request.user.get_username()
    address = throttle.client_address(request)
    form = ReauthForm(request.POST or None, user=request.user)
    context = {"form": form, "next": next_url}
    if request.method == "POST":
        remaining = throttle.lock_remaining(username=username, address=address)
        if remaining:
            context["form"] = ReauthForm(user=request.user)
            describe_fields_with(context["form"], "locked-alert")
            context["locked_minutes"] = _minutes(remaining)
            response = render(request, "accounts/reauth.html", context, status=429)
            response["Retry-After"] = str(remaining)
            return response
        if form.is_valid():
            throttle.record_success(username=username, address=address)
            reauth_mark(request)
            return redirect(next_url)
        throttle.record_failure(username=username, address=address)
    return render(request, "accounts/reauth.html", context)


# --- The token page --------------------------------------------------------------------


@sensitive_post_parameters("token")
@secret_error_reports
@sensitive_variables("token")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_page(request):
    credential = services.credential_get(user=request.user)
    form = TokenForm()
    if request.method == "POST":
        # The first token needs only the login; replacing or removing one needs a
        # password entered within REAUTH_SECONDS.
        if credential is not None and not reauth_is_fresh(request):
            return reauth_redirect(request, next_url=reverse("accounts:token"))
        if request.POST.get("action") == "remove":
            services.credential_remove(user=request.user)
            messages.success(request, "Your DCDN API token was removed.")
            return redirect("accounts:token")
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                services.credential_save(user=request.user, token=form.cleaned_data["token"])
            except ValidationError as exc:
                form.add_error("token", exc)
            else:
                messages.success(request, "API token verified with DCDN and saved.")
                return redirect("accounts:token")
    context = {
        "credential": credential,
        "form": form,
        "reauth_fresh": reauth_is_fresh(request),
        "reauth_minutes_left": _minutes(reauth_seconds_left(request)),
        "reauth_url": reauth_url(request, next_url=reverse("accounts:token")),
    }
    return render(request, "accounts/token.html", context)


# --- CSRF failure ------------------------------------------------------------------------


def csrf_failure(request, reason: str = ""):
    """htmx does not swap a 403, so a stale token would fail silently: ask htmx to reload
    the page (which brings a fresh token). Other requests get a page that says what to do."""
    if _is_htmx(request):
        response = HttpResponse(status=403)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "accounts/csrf_failure.html", status=403)
