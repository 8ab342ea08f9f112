"""Instances and operations pages.

One view per page; htmx asks the same view (or a small fragment URL) for a named partial
of the page's template. Polls read the per-user snapshot or the database, never DCDN.
Every DcdnError becomes a message on the page (or a trip to the token page for 401).
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from accounts.errors import TokenMissing
from accounts.services import credential_get, dcdn_client_for
from panel.dcdn.catalog import catalog_cached, catalog_get
from panel.dcdn.errors import BadRequest, DcdnError, NotFound, Unauthorized
from panel.dcdn.types import TRANSITIONAL_STATUSES, Catalog, Instance
from panel.dcdn_errors_ui import (
    dcdn_error_message,
    dcdn_error_response,
    dcdn_error_retry_seconds,
)

from . import selectors, services
from .errors import OperationConflict, PasswordUnavailable
from .forms import (
    DestroyConfirmForm,
    InstanceCreateForm,
    SshKeyForm,
    operation_error_summary,
)
from .snapshot import snapshot_get

ACTIONS = {
    # action: (statuses it applies to, progressive verb, needs confirmation)
    "start": ({"stopped"}, "Starting", False),
    "stop": ({"running"}, "Stopping", True),
    "restart": ({"running"}, "Restarting", True),
}
RESET_PASSWORD_STATUSES = {"running", "stopped"}
SORT_COLUMNS = {
    # column key (also the sort query value where sortable): heading
    "name": "Name",
    "status": "Status",
    "plan": "Plan",
    "region": "Region",
    "node": "Node(s)",
    "ip": "IP address",
    "cost": "Monthly cost",
}
SORTABLE = frozenset(SORT_COLUMNS) - {"node"}
# Columns a phone-width screen leaves out, so name, status, IP and cost stay in view.
HIDDEN_ON_PHONES = frozenset({"plan", "node"})
# The list's table refreshes itself this often (from the shared snapshot), so instances
# made elsewhere (another tab, a teammate, outside the panel) show up without a reload.
LIST_REFRESH_SECONDS = 30
# After an action, keep the status block polling this long even if the snapshot still
# shows the old settled status (it refreshes at most every DCDN_SNAPSHOT_SECONDS).
POLL_GRACE_SECONDS = 8
PASSWORD_KINDS = {"create", "reset_password"}
OPERATIONS_PAGE_LIMIT = 200


# --- small helpers -----------------------------------------------------------------------


def _toast(response: HttpResponse, text: str, level: str = "info") -> HttpResponse:
    return trigger_client_event(response, "toast", {"text": text, "level": level})


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that htmx follows as a full page load."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _token_page_on_rejection(view):
    """A rejected or missing token met anywhere in the view takes the user to the token
    page (see ``dcdn_error_response``); the view's own handlers pass it on with
    ``_pass_on_rejection`` and deal only with the errors shown in place."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Unauthorized as error:
            return dcdn_error_response(request, error)

    return wrapped


def _pass_on_rejection(error: DcdnError) -> None:
    """Re-raise a rejected or missing token for ``_token_page_on_rejection``."""
    if isinstance(error, Unauthorized):
        raise error


def _error_context(error: DcdnError) -> dict:
    return {
        "error_message": dcdn_error_message(error),
        "retry_seconds": dcdn_error_retry_seconds(error),
    }


def _snapshot_problem(snapshot) -> DcdnError | str | None:
    error = getattr(snapshot, "error", None)
    return error or None


def _snapshot_error_context(snapshot) -> dict:
    error = _snapshot_problem(snapshot)
    if error is None:
        return {}
    if isinstance(error, DcdnError):
        return _error_context(error)
    return {"error_message": str(error), "retry_seconds": 5}


def _snapshot_age(snapshot) -> int | None:
    fetched_at = getattr(snapshot, "fetched_at", None)
    if fetched_at is None:
        return None
    if isinstance(fetched_at, int | float):
        return max(0, int(time.time() - fetched_at))
    if isinstance(fetched_at, datetime):
        return max(0, int((timezone.now() - fetched_at).total_seconds()))
    return None


def _rejected_token(snapshot) -> DcdnError | None:
    """A 401 the snapshot met upstream (not a missing token, which the page explains)."""
    error = _snapshot_problem(snapshot)
    if isinstance(error, Unauthorized) and not isinstance(error, TokenMissing):
        return error
    return None


def _owned_instance(request: HttpRequest, instance_id: str) -> Instance:
    """The user's instance from the snapshot, else from DCDN; Http404 when not theirs."""
    instance = selectors.instance_from_snapshot(user=request.user, instance_id=instance_id)
    if instance is None:
        instance = selectors.instance_for_user(user=request.user, instance_id=instance_id)
    return instance


def _action_states(instance: Instance) -> dict:
    status = instance.status
    return {
        "start": status in ACTIONS["start"][0],
        "stop": status in ACTIONS["stop"][0],
        "restart": status in ACTIONS["restart"][0],
        "reset_password": status in RESET_PASSWORD_STATUSES,
        "destroy": status != "destroying",
    }


def _settled_toast(name: str, was: str, now: str | None) -> tuple[str, str] | None:
    """A toast for a status that left its transition between two polls."""
    if was not in TRANSITIONAL_STATUSES or now == was:
        return None
    if now is None:
        return (f"{name or 'The instance'} was destroyed.", "success")
    if now in TRANSITIONAL_STATUSES:
        return None
    return (f"{name or 'The instance'} is now {now}.", "success")


# --- list ----------------------------------------------------------------------------------


def _list_params(request: HttpRequest) -> dict:
    sort = request.GET.get("sort", "name")
    if sort.lstrip("-") not in SORTABLE:
        sort = "name"
    return {
        "q": request.GET.get("q", "").strip()[:100],
        "status": request.GET.get("status", "").strip()[:20],
        "region": request.GET.get("region", "").strip()[:40],
        "sort": sort,
    }


def _sort_headers(params: dict) -> list[dict]:
    base = reverse("instances:list")
    current = params["sort"]
    headers = []
    for key, label in SORT_COLUMNS.items():
        direction = None
        if current.lstrip("-") == key:
            direction = "descending" if current.startswith("-") else "ascending"
        next_sort = f"-{key}" if direction == "ascending" else key
        query = {k: v for k, v in params.items() if v and k != "sort"}
        query["sort"] = next_sort
        headers.append(
            {
                "key": key,
                "label": label,
                "direction": direction,
                "url": f"{base}?{urlencode(query)}" if key in SORTABLE else "",
                "numeric": key == "cost",
                "hide_sm": key in HIDDEN_ON_PHONES,
            }
        )
    return headers


def _inflight_context(user) -> dict:
    active = list(selectors.operations_active_for_user(user=user))
    return {"active_ops": active, "inflight_sig": _ops_signature(active)}


def _ops_signature(operations) -> str:
    return ",".join(f"{op.pk}.{op.state}.{op.step}" for op in operations)


def _signature_ids(signature: str) -> set[int]:
    ids = set()
    for part in signature.split(","):
        head = part.split(".", 1)[0]
        if head.isdigit():
            ids.add(int(head))
    return ids


@login_required
@require_GET
@vary_on_headers("HX-Request")
@_token_page_on_rejection
def instance_list(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("row"):
        return _list_row(request, request.GET["row"])
    params = _list_params(request)
    context: dict = {
        **params,
        "sort_headers": _sort_headers(params),
        "refresh_seconds": LIST_REFRESH_SECONDS,
    }
    query = {k: v for k, v in params.items() if v and not (k == "sort" and v == "name")}
    context["refresh_url"] = reverse("instances:list") + (f"?{urlencode(query)}" if query else "")
    context["filtered"] = bool(params["q"] or params["status"] or params["region"])
    try:
        listing = selectors.instance_list(user=request.user, **params)
    except TokenMissing:
        context["no_token"] = True
        listing = None
    except DcdnError as error:
        _pass_on_rejection(error)
        context.update(_error_context(error))
        listing = None
    if listing is not None and isinstance(_snapshot_problem(listing.snapshot), TokenMissing):
        context["no_token"] = True
        listing = None
    if listing is not None:
        rejected = _rejected_token(listing.snapshot)
        if rejected is not None:
            return dcdn_error_response(request, rejected)
        context.update(
            listing=listing,
            rows=listing.rows,
            snapshot_age=_snapshot_age(listing.snapshot),
            **_snapshot_error_context(listing.snapshot),
        )
    if request.htmx and not request.htmx.boosted:
        context["fragment"] = True
        return render(request, "instances/list.html#table", context)
    if not context.get("no_token"):
        context.update(_inflight_context(request.user))
    return render(request, "instances/list.html", context)


def _list_row(request: HttpRequest, instance_id: str) -> HttpResponse:
    """One polled row, read from the snapshot; empty when the instance is gone."""
    was = request.GET.get("was", "")
    name = request.GET.get("name", "")[:63]
    snapshot = snapshot_get(user=request.user)  # refreshed at most once per interval
    instance = snapshot.find(instance_id)
    rejected = _rejected_token(snapshot)
    if rejected is not None:
        return dcdn_error_response(request, rejected)
    if instance is None and _snapshot_problem(snapshot):
        # The snapshot could not be refreshed: keep the row and keep polling.
        return HttpResponse(status=204)
    if instance is None:
        response = HttpResponse("")
    else:
        response = render(request, "instances/list.html#row", {"i": instance})
    toast = _settled_toast(name, was, instance.status if instance else None)
    if toast:
        _toast(response, *toast)
    if instance is None:
        # The row is gone: the counts and the monthly total change with it.
        trigger_client_event(response, "instances-changed", {})
    return response


# --- create --------------------------------------------------------------------------------


def _catalog_for(user) -> Catalog:
    """The shared cached catalog; fetched with this user's token only when cold."""
    catalog = catalog_cached()
    if catalog is not None:
        return catalog
    return catalog_get(client=dcdn_client_for(user))


def _taken_names(user) -> set[str]:
    names: set[str] = set()
    try:
        snapshot = snapshot_get(user=user)
        names.update(i.name for i in snapshot.instances)
    except DcdnError:
        pass  # DCDN answers 409 itself; the operation page then shows it on Name
    for op in selectors.operations_active_for_user(user=user):
        if op.kind == "create":
            names.add(op.instance_name or (op.params or {}).get("name", ""))
    return names


def _catalog_json(catalog: Catalog) -> dict:
    return {
        "plans": [
            {
                "id": p.id,
                "cpu_type": p.cpu_type,
                "price_usd": str(p.price_usd),
            }
            for p in catalog.plans
        ],
        "regions": [{"id": r.id, "nodes": r.nodes} for r in catalog.regions],
        "templates": [
            {
                "id": t.id,
                "name": t.name,
                "plan": t.plan,
                "image": t.image,
                "cpu_type": t.cpu_type,
                "description": t.description,
            }
            for t in catalog.templates
        ],
    }


def _operation_as_form_data(operation) -> dict:
    params = operation.params or {}
    data = {
        "name": params.get("name", operation.instance_name or ""),
        "plan": params.get("plan", ""),
        "image": params.get("image", ""),
        "region": params.get("region", ""),
        "cpu_type": params.get("cpu_type", "shared"),
        "ssh_keys": "\n".join(params.get("ssh_keys") or ()),
    }
    if params.get("redundant"):
        data["redundant"] = "on"
    return data


def _template_initial(catalog: Catalog, template_id: str) -> dict:
    template = next((t for t in catalog.templates if t.id == template_id), None)
    if template is None:
        return {}
    initial = {"template": template.id, "image": template.image, "cpu_type": template.cpu_type}
    if catalog.plan(template.plan):
        initial["plan"] = template.plan
    return initial


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@_token_page_on_rejection
def instance_create(request: HttpRequest) -> HttpResponse:
    if credential_get(user=request.user) is None:
        # Nothing could be created without a token: say so before the form is filled in.
        return dcdn_error_response(request, TokenMissing())
    try:
        catalog = _catalog_for(request.user)
    except DcdnError as error:
        _pass_on_rejection(error)
        context = {"catalog_missing": True, **_error_context(error)}
        partial = request.htmx and request.method == "POST"
        template = "instances/create.html#form_area" if partial else "instances/create.html"
        return render(request, template, context)

    taken = _taken_names(request.user)
    source_operation = None
    template_initial = {}
    if request.method == "POST":
        form = InstanceCreateForm(request.POST, catalog=catalog, taken_names=taken)
        if form.is_valid():
            try:
                operation = services.operation_create_request(
                    user=request.user, **form.create_params()
                )
            except OperationConflict as conflict:
                field = getattr(conflict, "field", None) or "name"
                form.add_error(field if field in form.fields else None, str(conflict))
            except DcdnError as error:
                _pass_on_rejection(error)
                form.add_error(None, dcdn_error_message(error))
            else:
                return _redirect(request, reverse("instances:operation", args=[operation.pk]))
    elif request.GET.get("from_operation", "").isdigit():
        source_operation = selectors.operation_for_user(
            user=request.user, operation_id=int(request.GET["from_operation"])
        )
        form = InstanceCreateForm(
            _operation_as_form_data(source_operation),
            catalog=catalog,
            taken_names=taken,
        )
        form.is_valid()
        if source_operation.error_code or source_operation.error_message:
            form.apply_upstream_error(
                code=source_operation.error_code or "",
                field=source_operation.error_field or "",
                message=source_operation.error_message or "",
            )
    else:
        template_initial = _template_initial(catalog, request.GET.get("template", ""))
        initial = {k: v for k, v in template_initial.items() if k != "template"}
        form = InstanceCreateForm(initial=initial, catalog=catalog, taken_names=taken)

    context = {
        "form": form,
        "catalog": catalog,
        "catalog_data": _catalog_json(catalog),
        "price": form.price(),
        "selected_template": template_initial.get("template", ""),
        "source_operation": source_operation,
    }
    if request.htmx and request.method == "POST":
        return render(request, "instances/create.html#form_area", context)
    return render(request, "instances/create.html", context)


# --- detail and actions --------------------------------------------------------------------


def _status_context(instance: Instance, *, poll_until: int = 0, **extra) -> dict:
    now = int(time.time())
    return {
        "instance": instance,
        "can": _action_states(instance),
        "poll": instance.is_transitional or poll_until > now,
        "poll_until": poll_until if poll_until > now else 0,
        **extra,
    }


def _password_operation(user, instance_id: str):
    operation = selectors.operation_latest_for_instance(user=user, instance_id=instance_id)
    if operation is None or operation.kind != "reset_password":
        return None
    if operation.is_active or operation.has_password_to_reveal:
        return operation
    return None


def _detail_context(request: HttpRequest, instance_id: str, **extra) -> dict:
    context: dict = {"instance_id": instance_id}
    try:
        instance = selectors.instance_for_user(user=request.user, instance_id=instance_id)
    except NotFound as error:
        raise Http404("No such instance.") from error
    except DcdnError as error:
        if isinstance(error, Unauthorized):
            raise
        context.update(_error_context(error))
        instance = selectors.instance_from_snapshot(user=request.user, instance_id=instance_id)
    if instance is not None:
        context.update(_status_context(instance))
        context["usage"] = _usage_rows(instance, request)
    context["password_op"] = _password_operation(request.user, instance_id)
    context.setdefault("ssh_form", SshKeyForm())
    context.update(extra)
    return context


def _usage_rows(instance: Instance, request: HttpRequest) -> list[dict]:
    usage = instance.usage
    if usage is None:
        return []
    plan = None
    catalog = catalog_cached()
    if catalog is not None:
        plan = catalog.plan(instance.plan)
    rows = [
        {
            "label": "CPU",
            "value": float(usage.cpu_percent),
            "max": 100,
            "text": f"{usage.cpu_percent.quantize(1) if usage.cpu_percent else 0} %",
        }
    ]
    ram_max = plan.ram_mb if plan else None
    rows.append(
        {
            "label": "RAM",
            "value": usage.ram_used_mb,
            "max": ram_max,
            "text": f"{usage.ram_used_mb} MB" + (f" of {ram_max} MB" if ram_max else ""),
        }
    )
    disk_max = plan.disk_gb if plan else None
    rows.append(
        {
            "label": "Disk",
            "value": float(usage.disk_used_gb),
            "max": disk_max,
            "text": f"{usage.disk_used_gb} GB" + (f" of {disk_max} GB" if disk_max else ""),
        }
    )
    bw_max = float(plan.bandwidth_tb * 1000) if plan and plan.bandwidth_tb else None
    rows.append(
        {
            "label": "Bandwidth",
            "value": float(usage.bandwidth_used_gb),
            "max": bw_max,
            "text": f"{usage.bandwidth_used_gb} GB"
            + (f" of {plan.bandwidth_tb} TB this month" if bw_max else ""),
        }
    )
    for row in rows:
        if not row["max"]:
            row["max"] = max(row["value"], 1)
        row["value"] = min(row["value"], row["max"])
    return rows


@login_required
@require_GET
@vary_on_headers("HX-Request")
@_token_page_on_rejection
def instance_detail(request: HttpRequest, instance_id: str) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "status":
        return _status_poll(request, instance_id)
    context = _detail_context(request, instance_id)
    return render(request, "instances/detail.html", context)


def _status_poll(request: HttpRequest, instance_id: str) -> HttpResponse:
    was = request.GET.get("was", "")
    name = request.GET.get("name", "")[:63]
    try:
        poll_until = int(request.GET.get("until", "0"))
    except ValueError:
        poll_until = 0
    snapshot = snapshot_get(user=request.user)  # refreshed at most once per interval
    instance = snapshot.find(instance_id)
    rejected = _rejected_token(snapshot)
    if rejected is not None:
        return dcdn_error_response(request, rejected)
    if instance is None:
        if _snapshot_problem(snapshot) or poll_until > time.time():
            return HttpResponse(status=204)  # cannot tell yet: keep polling
        response = render(
            request,
            "instances/detail.html#status",
            {"gone": True, "instance_id": instance_id, "gone_name": name},
        )
    else:
        response = render(
            request,
            "instances/detail.html#status",
            _status_context(instance, poll_until=poll_until),
        )
    toast = _settled_toast(name, was, instance.status if instance else None)
    if toast:
        _toast(response, *toast)
    return response


def _status_response(
    request: HttpRequest, instance: Instance, *, poll_until: int = 0, **extra
) -> HttpResponse:
    return render(
        request,
        "instances/detail.html#status",
        _status_context(instance, poll_until=poll_until, **extra),
    )


@login_required
@require_POST
@_token_page_on_rejection
def instance_action(request: HttpRequest, instance_id: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    detail_url = reverse("instances:detail", args=[instance_id])
    current: Instance | None = None
    try:
        current = _owned_instance(request, instance_id)
        instance = services.instance_action(
            user=request.user, instance_id=instance_id, action=action
        )
    except NotFound as error:
        raise Http404("No such instance.") from error
    except DcdnError as error:
        _pass_on_rejection(error)
        text = dcdn_error_message(error)
        if request.htmx:
            shown = (
                selectors.instance_from_snapshot(user=request.user, instance_id=instance_id)
                or current
            )
            if shown is None:
                return _toast(HttpResponse(status=204), text, "error")
            return _toast(_status_response(request, shown, action_error=text), text, "error")
        messages.error(request, text)
        return redirect(detail_url)
    verb = ACTIONS[action][1]
    text = f"{verb} {instance.name or (current.name if current else '')}…"
    if request.htmx:
        response = _status_response(
            request, instance, poll_until=int(time.time()) + POLL_GRACE_SECONDS
        )
        return _toast(response, text, "info")
    messages.info(request, text)
    return redirect(detail_url)


@login_required
@require_POST
@_token_page_on_rejection
def instance_reset_password(request: HttpRequest, instance_id: str) -> HttpResponse:
    try:
        _owned_instance(request, instance_id)
        operation = services.instance_reset_password(user=request.user, instance_id=instance_id)
    except NotFound as error:
        raise Http404("No such instance.") from error
    except (DcdnError, OperationConflict) as error:
        if isinstance(error, DcdnError):
            _pass_on_rejection(error)
            text = dcdn_error_message(error)
        else:
            text = str(error)
        messages.error(request, text)
        return _redirect(request, reverse("instances:detail", args=[instance_id]))
    return _redirect(request, reverse("instances:operation", args=[operation.pk]))


@login_required
@require_POST
@_token_page_on_rejection
def instance_ssh_key(request: HttpRequest, instance_id: str) -> HttpResponse:
    detail_url = reverse("instances:detail", args=[instance_id])
    try:
        instance = _owned_instance(request, instance_id)
    except NotFound as error:
        raise Http404("No such instance.") from error
    except DcdnError as error:
        _pass_on_rejection(error)
        messages.error(request, dcdn_error_message(error))
        return _redirect(request, detail_url)
    form = SshKeyForm(request.POST)
    added = False
    if form.is_valid():
        try:
            services.instance_add_ssh_key(
                user=request.user,
                instance_id=instance_id,
                public_key=form.cleaned_data["public_key"],
            )
        except NotFound as error:
            raise Http404("No such instance.") from error
        except DcdnError as error:
            _pass_on_rejection(error)
            if isinstance(error, BadRequest):
                form.add_error("public_key", error.message)
            else:
                form.add_error(None, dcdn_error_message(error))
        else:
            added = True
    if added:
        text = f"SSH key added to {instance.name}."
        if request.htmx:
            response = render(
                request,
                "instances/detail.html#ssh_key",
                {"instance": instance, "ssh_form": SshKeyForm(), "ssh_added": True},
            )
            return _toast(response, text, "success")
        messages.success(request, text)
        return redirect(detail_url)
    if request.htmx:
        return render(
            request, "instances/detail.html#ssh_key", {"instance": instance, "ssh_form": form}
        )
    context = _detail_context(request, instance_id, ssh_form=form)
    return render(request, "instances/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@_token_page_on_rejection
def instance_destroy(request: HttpRequest, instance_id: str) -> HttpResponse:
    try:
        instance = _owned_instance(request, instance_id)
    except NotFound as error:
        raise Http404("No such instance.") from error
    except DcdnError as error:
        _pass_on_rejection(error)
        return render(
            request,
            "instances/destroy.html",
            {"instance": None, "instance_id": instance_id, **_error_context(error)},
        )
    form = DestroyConfirmForm(request.POST or None, instance_name=instance.name)
    if request.method == "POST" and instance.status != "destroying" and form.is_valid():
        try:
            operation = services.operation_destroy_request(
                user=request.user, instance_id=instance.id, instance_name=instance.name
            )
        except OperationConflict as conflict:
            form.add_error(None, str(conflict))
        except DcdnError as error:
            _pass_on_rejection(error)
            form.add_error(None, dcdn_error_message(error))
        else:
            messages.info(request, f"Destroying {instance.name}…")
            return _redirect(request, reverse("instances:operation", args=[operation.pk]))
    return render(request, "instances/destroy.html", {"instance": instance, "form": form})


# --- operations ----------------------------------------------------------------------------


def _finished_toast(operation) -> tuple[str, str]:
    name = operation.instance_name or "the instance"
    if operation.state == "succeeded":
        done = {
            "create": f"{name} was created and is running.",
            "destroy": f"{name} was destroyed.",
            "reset_password": f"The root password of {name} was reset.",
        }.get(operation.kind, f"{operation.kind_label} of {name} finished.")
        return (done, "success")
    return (f"{operation.kind_label} of {name} failed.", "error")


@login_required
@require_GET
@vary_on_headers("HX-Request")
def operation_list(request: HttpRequest) -> HttpResponse:
    part = request.GET.get("part", "") if request.htmx else ""
    if part == "inflight":
        return _inflight_poll(request)
    operations = list(selectors.operations_for_user(user=request.user, limit=OPERATIONS_PAGE_LIMIT))
    active_ids = [op.pk for op in operations if op.is_active]
    context = {"operations": operations, "active_ids": ",".join(map(str, active_ids))}
    if part == "rows":
        response = render(request, "instances/operations.html#table", context)
        previously = _signature_ids(request.GET.get("active", ""))
        for op in operations:
            if op.pk in previously and op.is_finished:
                _toast(response, *_finished_toast(op))
        return response
    return render(request, "instances/operations.html", context)


def _inflight_poll(request: HttpRequest) -> HttpResponse:
    context = _inflight_context(request.user)
    response = render(request, "instances/operations.html#inflight", context)
    before = request.GET.get("sig", "")
    if before != context["inflight_sig"]:
        trigger_client_event(response, "instances-changed", {})
        finished = _signature_ids(before) - {op.pk for op in context["active_ops"]}
        for pk in sorted(finished):
            try:
                operation = selectors.operation_for_user(user=request.user, operation_id=pk)
            except Http404:
                continue
            _toast(response, *_finished_toast(operation))
    return response


def _operation_context(request: HttpRequest, pk: int, **extra) -> dict:
    operation = selectors.operation_for_user(user=request.user, operation_id=pk)
    return {
        "op": operation,
        "op_error": operation_error_summary(
            kind=operation.kind,
            code=operation.error_code,
            field=operation.error_field,
            message=operation.error_message,
        ),
        "password_kinds": PASSWORD_KINDS,
        "retry_url": (
            f"{reverse('instances:create')}?from_operation={operation.pk}"
            if operation.kind == "create"
            else ""
        ),
        **extra,
    }


@login_required
@require_GET
@never_cache
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    context = _operation_context(request, pk, with_head=True)
    return render(request, "instances/operation.html", context)


@login_required
@require_GET
@never_cache
def operation_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The step indicator alone, polled from the database while the operation runs.

    ``head=1`` (the operation page's own poll) also refreshes the page head's links,
    which gain "Instance" once DCDN has named the instance."""
    context = _operation_context(request, pk, oob=True, with_head=request.GET.get("head") == "1")
    response = render(request, "instances/operation.html#progress", context)
    operation = context["op"]
    if request.htmx and operation.is_finished and request.GET.get("was") == "active":
        _toast(response, *_finished_toast(operation))
    return response


@login_required
@require_POST
@never_cache
def operation_reveal(request: HttpRequest, pk: int) -> HttpResponse:
    selectors.operation_for_user(user=request.user, operation_id=pk)  # 404 if not theirs
    password = None
    refusal = None
    try:
        password = services.operation_reveal_password(user=request.user, operation_id=pk)
    except PasswordUnavailable as unavailable:
        refusal = str(unavailable) or "The root password is no longer available."
    context = _operation_context(
        request, pk, revealed_password=password, reveal_refusal=refusal, with_head=True
    )
    if request.htmx and password is not None:
        # Replaces the button's region: the password, with no button left to press again.
        response = render(request, "instances/operation.html#reveal_controls", context)
    elif request.htmx:
        context["oob"] = True
        response = render(request, "instances/operation.html#reveal_refused", context)
        response["HX-Retarget"] = "#reveal-message"
        response["HX-Reswap"] = "innerHTML"
    else:
        response = render(request, "instances/operation.html", context)
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response
