"""Celery tasks: thin wrappers that carry an operation id (never a token or password)
and re-schedule themselves while the operation needs polling."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)

# After an unexpected error (a database hiccup, a bug), look again this much later; the
# attempt counter still ends an operation that keeps failing.
ERROR_RETRY_SECONDS = 10.0


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def operation_advance(self, operation_id: int) -> None:
    try:
        delay = services.operation_advance(operation_id=int(operation_id))
    except Exception:
        logger.exception("Operation %s: step failed; retrying later", operation_id)
        delay = ERROR_RETRY_SECONDS
    if delay is None:
        return
    if self.request.is_eager or settings.CELERY_TASK_ALWAYS_EAGER:
        # No worker to honour a countdown; the reconciler or a worker continues it.
        return
    # A new message rather than retry(): polling is the normal path, not an error.
    operation_advance.apply_async(args=[operation_id], countdown=delay)


@shared_task(ignore_result=True)
def operations_reconcile() -> int:
    return services.operations_reconcile()


@shared_task(ignore_result=True)
def operations_resume() -> int:
    return services.operations_resume()


@worker_ready.connect
def _resume_operations_when_a_worker_starts(**_kwargs) -> None:
    # Through the broker, not inline: the signal runs in the worker's main process.
    try:
        operations_resume.apply_async()
    except Exception:
        logger.exception("Could not queue the resume of operations; the reconciler will")
