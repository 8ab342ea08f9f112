"""Instance changes: operations recorded in the database and advanced by Celery tasks,
and the quick synchronous actions (start/stop/restart, reset password, SSH key).

How an operation stays correct when things go wrong:

- The create (or destroy) request is claimed with a conditional UPDATE that sets
  ``submitted_at`` just before it leaves; only the winner sends it, so a re-delivered
  message and the reconciler cannot both create.
- A run that finds ``submitted_at`` set but no instance id knows the request may have
  reached DCDN (timeout, killed worker): it looks the name up in the snapshot and adopts
  the instance. Not found after a grace period means it was not created (say the worker
  died before the request left): the create is sent once more. That cannot make a second
  instance, because DCDN refuses a duplicate name (409), which is then adopted too.
- Polling reads the owner's shared snapshot, so all of one owner's operations and tabs
  together cost at most one upstream ``GET /instances`` per ``DCDN_SNAPSHOT_SECONDS``.
- Every run counts an attempt; past ``OPERATIONS_MAX_ATTEMPTS`` the operation fails, so
  a poison message cannot loop forever.
- A run whose operation is not due yet (``next_poll_at`` in the future) was sent by a
  second chain (re-delivery, reconciler) and stops there, so chains do not multiply.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from accounts.crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from panel.dcdn.errors import (
    BadRequest,
    Conflict,
    DcdnError,
    InsufficientCredits,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from panel.dcdn.types import Instance
from panel.dcdn_errors_ui import dcdn_error_message

from . import snapshot as snapshots
from .errors import OperationConflict, PasswordUnavailable
from .models import Operation

logger = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "restart")
# A run may start this much before its operation's next_poll_at (timer granularity).
DUE_TOLERANCE_SECONDS = 1.0

NOTE_ADOPTED = (
    "DCDN's answer to the create was lost, so the panel found the instance by its name "
    "and adopted it. The root password was not received: use Reset password to get one."
)
NOTE_CHECKING = "DCDN did not answer in time; checking whether the request took effect."
NOTE_NO_PASSWORD = "DCDN did not return a root password: use Reset password to get one."
NOTE_SUPERSEDED = "A newer password reset replaced this password."
NOTE_RESENDING = (
    "No instance appeared after the create was sent, so it is being sent again "
    "(DCDN refuses a second instance with the same name)."
)
# Creates sent again after their first outcome stayed unknown; then the operation fails.
MAX_CREATE_RESENDS = 2

_ERROR_CODES = {
    Unauthorized: "unauthorized",
    BadRequest: "bad_request",
    InsufficientCredits: "insufficient_credits",
    NotFound: "not_found",
    Conflict: "conflict",
}


# --- settings, read per call so tests can override them ---------------------------------


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _poll_seconds() -> float:
    return max(0.1, _setting("OPERATIONS_POLL_SECONDS", 2.0))


def _max_backoff() -> float:
    return max(_poll_seconds(), _setting("OPERATIONS_MAX_BACKOFF_SECONDS", 60.0))


def _password_ttl() -> timedelta:
    return timedelta(seconds=_setting("OPERATIONS_PASSWORD_TTL_SECONDS", 24 * 3600))


def _submit_window() -> float:
    """How long a create or destroy request can take at most: budget wait, connect, read."""
    return (
        _setting("DCDN_BUDGET_MAX_WAIT", 5.0)
        + _setting("DCDN_CONNECT_TIMEOUT", 3.05)
        + _setting("DCDN_READ_TIMEOUT", 10.0)
        + 2.0
    )


def _grace() -> timedelta:
    """How long after sending a request its effect may take to show in the list.

    Never shorter than a request can take, so a slow request still in flight is not
    declared lost by another run.
    """
    seconds = max(_setting("OPERATIONS_ADOPT_GRACE_SECONDS", 30.0), _submit_window() + 1.0)
    return timedelta(seconds=seconds)


# --- requests from the web ------------------------------------------------------------------


def operation_create_request(
    *,
    user,
    name: str,
    plan: str,
    image: str,
    region: str,
    cpu_type: str = "shared",
    ssh_keys=(),
    redundant: bool = False,
) -> Operation:
    """Record a create and hand it to a worker; returns at once (state queued)."""
    owner = snapshots.owner_key(user)
    name = name.strip()
    active = Operation.objects.filter(
        owner_key=owner,
        kind=Operation.Kind.CREATE,
        state__in=Operation.ACTIVE_STATES,
        instance_name=name,
    )
    if active.exists():
        raise OperationConflict(
            f"An instance named '{name}' is already being created.", field="name"
        )
    # A recent snapshot catches an existing name without asking DCDN; DCDN has the last
    # word either way (a 409 fails the operation on the name field).
    snap = snapshots.snapshot_peek(user=user)
    existing = snap.find_by_name(name) if (snap.age_seconds or 0) < 300 else None
    if existing is not None and existing.status != "destroying":
        raise OperationConflict(f"An instance named '{name}' already exists.", field="name")
    params = {
        "name": name,
        "plan": plan,
        "image": image,
        "region": region,
        "cpu_type": cpu_type or "shared",
        # Public keys only: the order is shown back to the owner and kept.
        "ssh_keys": [key.strip() for key in ssh_keys if key and key.strip()],
        "redundant": bool(redundant),
    }
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                owner=user,
                owner_key=owner,
                kind=Operation.Kind.CREATE,
                state=Operation.State.QUEUED,
                step="submitted",
                instance_name=name,
                params=params,
                next_poll_at=timezone.now(),
            )
    except IntegrityError:
        # Another request for the same name won the race.
        raise OperationConflict(
            f"An instance named '{name}' is already being created.", field="name"
        ) from None
    _enqueue(operation.pk)
    return operation


def operation_destroy_request(*, user, instance_id: str, instance_name: str) -> Operation:
    """Record a destroy and hand it to a worker; the active one if it exists already."""
    owner = snapshots.owner_key(user)

    def active() -> Operation | None:
        return Operation.objects.filter(
            owner_key=owner,
            kind=Operation.Kind.DESTROY,
            state__in=Operation.ACTIVE_STATES,
            instance_id=instance_id,
        ).first()

    operation = active()
    if operation is not None:
        return operation
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                owner=user,
                owner_key=owner,
                kind=Operation.Kind.DESTROY,
                state=Operation.State.QUEUED,
                step="submitted",
                instance_id=instance_id,
                instance_name=instance_name,
                next_poll_at=timezone.now(),
            )
    except IntegrityError:
        existing = active()
        if existing is None:
            raise
        return existing
    _enqueue(operation.pk)
    return operation


def instance_action(*, user, instance_id: str, action: str) -> Instance:
    """Start, stop or restart now; the list shows the new status without another call."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown instance action {action!r}.")
    client = snapshots.client_for(user)
    method = getattr(client, f"{action}_instance")
    try:
        instance = method(instance_id)
    except NotFound:
        snapshots.snapshot_remove_instance(user=user, instance_id=instance_id)
        raise
    snapshots.snapshot_update_instance(user=user, instance=instance)
    snapshots.snapshot_mark_stale(user=user)
    snapshots.detail_forget(user=user, instance_id=instance_id)
    return instance


def instance_reset_password(*, user, instance_id: str) -> Operation:
    """Reset the root password now and keep the new one encrypted until revealed once."""
    client = snapshots.client_for(user)
    password = client.reset_password(instance_id)
    owner = snapshots.owner_key(user)
    now = timezone.now()
    known = snapshots.snapshot_peek(user=user).find(instance_id)
    with transaction.atomic():
        # DCDN invalidated the older passwords: nobody should reveal them any more.
        Operation.objects.filter(owner_key=owner, instance_id=instance_id).exclude(
            root_password_encrypted=""
        ).update(
            root_password_encrypted="",
            password_expires_at=now,
            note=NOTE_SUPERSEDED,
            updated_at=now,
        )
        name = known.name if known else _known_name(owner=owner, instance_id=instance_id)
        operation = Operation.objects.create(
            owner=user,
            owner_key=owner,
            kind=Operation.Kind.RESET_PASSWORD,
            state=Operation.State.SUCCEEDED,
            step="done",
            instance_id=instance_id,
            instance_name=name,
            attempts=1,
            root_password_encrypted=encrypt_secret(password),
            password_expires_at=now + _password_ttl(),
            submitted_at=now,
            finished_at=now,
        )
    return operation


def instance_add_ssh_key(*, user, instance_id: str, public_key: str) -> None:
    client = snapshots.client_for(user)
    client.add_ssh_key(instance_id, public_key.strip())


def operation_reveal_password(*, user, operation_id) -> str:
    """The root password, once: it is wiped in the same transaction that reads it."""
    owner = snapshots.owner_key(user)
    try:
        operation_id = int(operation_id)
    except (TypeError, ValueError):
        raise Http404("No such operation.") from None
    now = timezone.now()
    reason = None
    password = ""
    with transaction.atomic():
        operation = (
            Operation.objects.select_for_update().filter(pk=operation_id, owner_key=owner).first()
        )
        if operation is None:
            raise Http404("No such operation.")
        if operation.password_revealed_at is not None:
            reason = PasswordUnavailable.ALREADY_REVEALED
        elif operation.password_expired:
            reason = PasswordUnavailable.EXPIRED
            if operation.root_password_encrypted:
                operation.root_password_encrypted = ""
                operation.save(update_fields=["root_password_encrypted", "updated_at"])
        elif not operation.root_password_encrypted:
            reason = PasswordUnavailable.NONE
        else:
            try:
                password = decrypt_secret(operation.root_password_encrypted)
            except SecretUnreadable:
                reason = PasswordUnavailable.UNREADABLE
            else:
                operation.root_password_encrypted = ""
                operation.password_revealed_at = now
                operation.save(
                    update_fields=["root_password_encrypted", "password_revealed_at", "updated_at"]
                )
    if reason is not None:
        raise PasswordUnavailable(reason)
    return password


def _known_name(*, owner: str, instance_id: str) -> str:
    previous = (
        Operation.objects.filter(owner_key=owner, instance_id=instance_id)
        .exclude(instance_name="")
        .order_by("-created_at")
        .first()
    )
    return previous.instance_name if previous else ""


# --- the state machine (one short step per task run) -----------------------------------


def operation_advance(*, operation_id: int) -> float | None:
    """Run one step of the operation; seconds until the next one, or None when finished
    (or when this run is a duplicate that another chain already covers)."""
    now = timezone.now()
    operation = Operation.objects.select_related("owner").filter(pk=operation_id).first()
    if operation is None or not operation.is_active:
        return None
    if operation.next_poll_at and operation.next_poll_at > now + timedelta(
        seconds=DUE_TOLERANCE_SECONDS
    ):
        return None  # another chain owns the next step
    counted = Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(
        attempts=F("attempts") + 1, updated_at=now
    )
    if not counted:
        return None
    operation.refresh_from_db()
    limit = int(_setting("OPERATIONS_MAX_ATTEMPTS", 200))
    if operation.attempts > limit:
        _finish(
            operation,
            Operation.State.FAILED,
            error_code="gave_up",
            error_message=f"Gave up after {limit} attempts; DCDN never confirmed the result.",
        )
        return None
    try:
        if operation.kind == Operation.Kind.CREATE:
            delay = _advance_create(operation)
        elif operation.kind == Operation.Kind.DESTROY:
            delay = _advance_destroy(operation)
        else:
            _finish(operation, Operation.State.SUCCEEDED)
            delay = None
    except RateLimited as exc:
        delay = max(_poll_seconds(), exc.retry_after)
    except Unavailable:
        delay = _unavailable_delay()
    if delay is None:
        return None
    delay = min(max(delay, 0.1), _max_backoff())
    Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(
        next_poll_at=timezone.now() + timedelta(seconds=delay)
    )
    return delay


def _advance_create(operation: Operation) -> float | None:
    if operation.instance_id:
        return _poll_create(operation)
    if operation.submitted_at is None:
        return _submit_create(operation)
    return _adopt_or_wait(operation)


def _submit_create(operation: Operation) -> float | None:
    try:
        client = snapshots.client_for(operation.owner)
    except Unauthorized as exc:
        return _fail(operation, exc)
    claimed_at = _claim(operation)
    if claimed_at is None:
        return _poll_seconds()  # another run is sending it and will record the answer
    params = operation.params or {}
    try:
        created = client.create_instance(
            name=operation.instance_name,
            plan=params.get("plan", ""),
            image=params.get("image", ""),
            region=params.get("region", ""),
            cpu_type=params.get("cpu_type") or "shared",
            ssh_keys=list(params.get("ssh_keys") or ()),
            redundant=bool(params.get("redundant", False)),
        )
    except OutcomeUnknown:
        _update(operation, note=NOTE_CHECKING)
        return _poll_seconds()
    except (RateLimited, Unavailable) as exc:
        # Not applied by the simulator; a real provider's 5xx might have been, so the
        # next send counts as a resend and a duplicate-name 409 then means "adopt".
        _unclaim(operation, claimed_at, resend=bool(exc.status and exc.status >= 500))
        return _retry_delay(exc)
    except Conflict as exc:
        if not _resends(operation):
            return _fail(operation, exc)
        # A resend found the name taken: the first request did create it after all.
        _update(operation, note=NOTE_CHECKING)
        snapshots.snapshot_mark_stale(user=operation.owner)
        return _poll_seconds()
    except DcdnError as exc:
        return _fail(operation, exc)
    now = timezone.now()
    # The id first, whatever happened meanwhile: nothing below may lose the instance.
    Operation.objects.filter(pk=operation.pk).update(
        instance_id=created.instance.id, updated_at=now
    )
    Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(
        step="creating", state=Operation.State.SUBMITTED, note=""
    )
    snapshots.snapshot_update_instance(user=operation.owner, instance=created.instance)
    if created.root_password:
        # The only copy of the password there will ever be.
        Operation.objects.filter(pk=operation.pk).update(
            root_password_encrypted=encrypt_secret(created.root_password),
            password_expires_at=now + _password_ttl(),
        )
    else:
        Operation.objects.filter(pk=operation.pk).update(note=NOTE_NO_PASSWORD)
    operation.refresh_from_db()
    return _settle_create(operation, created.instance)


def _adopt_or_wait(operation: Operation) -> float | None:
    """The create may have reached DCDN: find it by name rather than send it again."""
    snap = snapshots.snapshot_get(user=operation.owner)
    wait = _next_poll(operation)
    if snap.fetched_at is None or snap.fetched_at <= operation.submitted_at:
        return wait  # no list read since the request left: nothing can be concluded yet
    found = snap.find_by_name(operation.instance_name)
    if found is not None and _adoptable(operation, found):
        Operation.objects.filter(pk=operation.pk, instance_id="").update(
            instance_id=found.id, note=NOTE_ADOPTED, updated_at=timezone.now()
        )
        Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(
            step="creating", state=Operation.State.SUBMITTED
        )
        operation.refresh_from_db()
        return _settle_create(operation, found)
    if timezone.now() - operation.submitted_at > _grace():
        if _resends(operation) < MAX_CREATE_RESENDS and _release_for_resend(operation):
            return _poll_seconds()
        _finish(
            operation,
            Operation.State.FAILED,
            error_code="not_created",
            error_message=(
                f"DCDN did not confirm the create and no instance named "
                f"'{operation.instance_name}' appeared, so it was not created. "
                "You can submit it again."
            ),
        )
        return None
    return wait


def _resends(operation: Operation) -> int:
    return int((operation.params or {}).get("resends", 0))


def _release_for_resend(operation: Operation) -> bool:
    """Let the next run send the create again; conditional, so only one run does."""
    params = dict(operation.params or {})
    params["resends"] = _resends(operation) + 1
    released = Operation.objects.filter(
        pk=operation.pk,
        submitted_at=operation.submitted_at,
        instance_id="",
        state__in=Operation.ACTIVE_STATES,
    ).update(
        submitted_at=None,
        state=Operation.State.QUEUED,
        params=params,
        note=NOTE_RESENDING,
        updated_at=timezone.now(),
    )
    if released:
        operation.submitted_at = None
        operation.state = Operation.State.QUEUED
        operation.params = params
    return bool(released)


def _adoptable(operation: Operation, instance: Instance) -> bool:
    """Only an instance made for this order: not older than it, not another operation's."""
    if instance.status == "destroying":
        return False
    if instance.created_at is not None:
        margin = timedelta(minutes=5)  # clocks of the panel and DCDN may differ a little
        if instance.created_at < operation.created_at - margin:
            return False
    return (
        not Operation.objects.filter(owner_key=operation.owner_key, instance_id=instance.id)
        .exclude(pk=operation.pk)
        .filter(kind=Operation.Kind.CREATE)
        .exists()
    )


def _poll_create(operation: Operation) -> float | None:
    snap = snapshots.snapshot_get(user=operation.owner)
    found = snap.find(operation.instance_id)
    if found is None:
        settled = snap.fetched_at is not None and snap.fetched_at > (
            operation.submitted_at or operation.created_at
        )
        if settled and timezone.now() - (operation.submitted_at or operation.created_at) > _grace():
            _finish(
                operation,
                Operation.State.FAILED,
                error_code="disappeared",
                error_message="The instance disappeared before it was running "
                "(it may have been destroyed outside the panel).",
            )
            return None
        return _next_poll(operation, snap)
    return _settle_create(operation, found, snap)


def _settle_create(
    operation: Operation, instance: Instance, snap: snapshots.Snapshot | None = None
) -> float | None:
    if instance.status == "creating":
        return _next_poll(operation, snap)
    if instance.status == "destroying":
        _finish(
            operation,
            Operation.State.FAILED,
            error_code="destroyed",
            error_message="The instance was destroyed before it was running.",
        )
        return None
    # running, or already moved on (stopped, restarting...) by its owner.
    _finish(operation, Operation.State.SUCCEEDED, step="running")
    return None


def _advance_destroy(operation: Operation) -> float | None:
    if operation.submitted_at is None:
        return _submit_destroy(operation)
    return _poll_destroy(operation)


def _submit_destroy(operation: Operation) -> float | None:
    user = operation.owner
    try:
        client = snapshots.client_for(user)
    except Unauthorized as exc:
        return _fail(operation, exc)
    claimed_at = _claim(operation)
    if claimed_at is None:
        return _poll_seconds()
    try:
        client.destroy_instance(operation.instance_id)
    except NotFound:
        snapshots.snapshot_remove_instance(user=user, instance_id=operation.instance_id)
        _finish(operation, Operation.State.SUCCEEDED, step="gone")
        return None
    except Conflict as exc:
        # Typically "already destroying": follow it like our own.
        _update(operation, step="destroying", note=exc.message)
        return _poll_seconds()
    except OutcomeUnknown:
        _update(operation, step="destroying", note=NOTE_CHECKING)
        return _poll_seconds()
    except (RateLimited, Unavailable) as exc:
        _unclaim(operation, claimed_at)
        return _retry_delay(exc)
    except DcdnError as exc:
        return _fail(operation, exc)
    _update(operation, step="destroying")
    known = snapshots.snapshot_peek(user=user).find(operation.instance_id)
    if known is not None:
        snapshots.snapshot_update_instance(
            user=user, instance=dataclasses.replace(known, status="destroying")
        )
    snapshots.detail_forget(user=user, instance_id=operation.instance_id)
    return _poll_seconds()


def _poll_destroy(operation: Operation) -> float | None:
    snap = snapshots.snapshot_get(user=operation.owner)
    if snap.fetched_at is None or snap.fetched_at <= operation.submitted_at:
        return _next_poll(operation, snap)
    found = snap.find(operation.instance_id)
    if found is None:
        _finish(operation, Operation.State.SUCCEEDED, step="gone")
        return None
    if found.status != "destroying" and timezone.now() - operation.submitted_at > _grace():
        _finish(
            operation,
            Operation.State.FAILED,
            error_code="not_destroyed",
            error_message=operation.note
            if operation.note and operation.note != NOTE_CHECKING
            else "DCDN did not start destroying the instance. You can try again.",
        )
        return None
    return _next_poll(operation, snap)


# --- helpers -----------------------------------------------------------------------------


def _claim(operation: Operation) -> datetime | None:
    """Atomically take the right to send the request; the time stamped, or None if
    another run has it. Its next step is not due before the request can have ended."""
    now = timezone.now()
    won = Operation.objects.filter(
        pk=operation.pk, submitted_at__isnull=True, state=Operation.State.QUEUED
    ).update(
        submitted_at=now,
        state=Operation.State.SUBMITTED,
        next_poll_at=now + timedelta(seconds=_submit_window()),
        updated_at=now,
    )
    if not won:
        return None
    operation.submitted_at = now
    operation.state = Operation.State.SUBMITTED
    return now


def _unclaim(operation: Operation, claimed_at: datetime, *, resend: bool = False) -> None:
    """Let a later run send the request again. ``resend``: this one may have taken effect."""
    fields = {"submitted_at": None, "state": Operation.State.QUEUED, "updated_at": timezone.now()}
    if resend:
        fields["params"] = {**(operation.params or {}), "resends": _resends(operation) + 1}
    Operation.objects.filter(pk=operation.pk, submitted_at=claimed_at).update(**fields)
    operation.submitted_at = None
    operation.state = Operation.State.QUEUED
    if resend:
        operation.params = fields["params"]


def _update(operation: Operation, **fields) -> None:
    fields["updated_at"] = timezone.now()
    Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(**fields)
    for name, value in fields.items():
        setattr(operation, name, value)


def _finish(operation: Operation, state: str, **fields) -> bool:
    """Finish once: a conditional update, so two runs cannot both finish it."""
    now = timezone.now()
    fields.update(state=state, finished_at=now, updated_at=now, next_poll_at=None)
    done = Operation.objects.filter(pk=operation.pk, state__in=Operation.ACTIVE_STATES).update(
        **fields
    )
    if done:
        for name, value in fields.items():
            setattr(operation, name, value)
    return bool(done)


def _fail(operation: Operation, exc: DcdnError) -> None:
    field = exc.field or ("name" if isinstance(exc, Conflict) else "")
    code = exc.code or next(
        (code for cls, code in _ERROR_CODES.items() if isinstance(exc, cls)), "error"
    )
    _finish(
        operation,
        Operation.State.FAILED,
        error_code=code[:64],
        error_message=dcdn_error_message(exc),
        error_field=field[:32],
    )
    return None


def _retry_delay(exc: DcdnError) -> float:
    if isinstance(exc, RateLimited):
        return max(_poll_seconds(), exc.retry_after)
    return _unavailable_delay()


def _unavailable_delay() -> float:
    return min(_max_backoff(), max(_poll_seconds() * 2, 5.0))


def _next_poll(operation: Operation, snap: snapshots.Snapshot | None = None) -> float:
    """When the owner's snapshot can next be refreshed, and no sooner than the poll
    interval; longer when the token is rejected (the owner has to act first)."""
    delay = max(_poll_seconds(), snapshots.snapshot_wait_seconds(user=operation.owner))
    if snap is not None and isinstance(snap.error, Unauthorized):
        delay = max(delay, 15.0)
    return delay


def operations_resume() -> int:
    """Send every active operation's next step for when it is due.

    Run when a worker starts: it may replace one that died holding their messages (the
    filesystem broker loses those, Redis only gives them back after its visibility
    timeout). A message for an operation that another chain already drives finds it not
    due and stops, so this never doubles the work. Returns how many were sent.
    """
    now = timezone.now()
    active = Operation.objects.filter(state__in=Operation.ACTIVE_STATES).values_list(
        "pk", "next_poll_at"
    )
    count = 0
    for pk, due in active.order_by("next_poll_at")[:500]:
        countdown = max(0.0, (due - now).total_seconds()) if due else 0.0
        _enqueue(pk, countdown=countdown)
        count += 1
    return count


def _enqueue(operation_id: int, *, countdown: float = 0.0) -> None:
    """Send the task once the operation is committed; if the broker is down, the
    reconciler sends it later (the operation is due already)."""

    def send() -> None:
        from .tasks import operation_advance as task

        try:
            options = {"countdown": countdown} if countdown > 0 else {}
            task.apply_async(args=[operation_id], **options)
        except Exception:
            logger.exception("Could not enqueue operation %s; the reconciler will", operation_id)

    transaction.on_commit(send)


# --- housekeeping (periodic) -------------------------------------------------------------


def operations_reconcile() -> int:
    """Re-enqueue active operations whose task was lost; wipe expired passwords.

    An operation is lost when its next step is overdue by more than
    ``OPERATIONS_RECONCILE_MARGIN_SECONDS``. Returns how many were re-enqueued.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=_setting("OPERATIONS_RECONCILE_MARGIN_SECONDS", 30.0))
    overdue = (
        Operation.objects.filter(state__in=Operation.ACTIVE_STATES)
        .filter(Q(next_poll_at__lt=cutoff) | Q(next_poll_at__isnull=True, updated_at__lt=cutoff))
        .values_list("pk", "next_poll_at")
        .order_by("next_poll_at")[:500]
    )
    count = 0
    for pk, due in list(overdue):
        rows = Operation.objects.filter(pk=pk, state__in=Operation.ACTIVE_STATES)
        rows = rows.filter(next_poll_at=due) if due else rows.filter(next_poll_at__isnull=True)
        # Conditional, so two reconcilers running together enqueue it once.
        if rows.update(next_poll_at=now):
            _enqueue(pk)
            count += 1
    if count:
        logger.info("Reconciler re-enqueued %s operation(s)", count)
    operation_passwords_expire()
    return count


def operation_passwords_expire() -> int:
    """Wipe root passwords nobody revealed in time. Returns how many were wiped."""
    now = timezone.now()
    return (
        Operation.objects.filter(password_expires_at__lt=now)
        .exclude(root_password_encrypted="")
        .update(root_password_encrypted="", updated_at=now)
    )
