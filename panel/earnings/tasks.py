"""Worker side of payouts: settle unknown outcomes. Tasks take ids only."""

from __future__ import annotations

import logging

from celery import shared_task

from panel.dcdn.errors import DcdnError

from .models import PayoutRequest
from .services import payout_reconcile_by_id, reconcile_grace

logger = logging.getLogger(__name__)

# Checks of one request before the worker leaves it to the history page.
MAX_CHECKS = 20


@shared_task(bind=True, ignore_result=True, max_retries=MAX_CHECKS)
def payout_reconcile_task(self, payout_id: int) -> None:
    """Read the summary and settle an unknown payout; look again later while it stays
    unknown. Never sends the payout again."""
    countdown = max(5, int(reconcile_grace().total_seconds() // 2))
    try:
        payout = payout_reconcile_by_id(payout_id=payout_id)
    except DcdnError as exc:
        logger.info("Payout %s: reconcile deferred (%s)", payout_id, type(exc).__name__)
        raise self.retry(countdown=countdown) from None
    if payout is None or payout.state != PayoutRequest.State.UNKNOWN:
        return
    if payout.check_count < MAX_CHECKS:
        raise self.retry(countdown=countdown)


@shared_task(ignore_result=True)
def payouts_reconcile_due() -> int:
    """Periodic sweep (for the beat schedule): queue a check of every unknown payout and
    of every request left "sending" by a process that stopped. Returns how many."""
    from django.utils import timezone

    from .services import sending_stale_after

    State = PayoutRequest.State
    stale = timezone.now() - sending_stale_after()
    ids = list(
        PayoutRequest.objects.filter(state=State.UNKNOWN).values_list("pk", flat=True)
    ) + list(
        PayoutRequest.objects.filter(state=State.SENDING, sent_at__lt=stale).values_list(
            "pk", flat=True
        )
    )
    for payout_id in ids:
        payout_reconcile_task.delay(payout_id)
    return len(ids)
