from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from .models import DcdnCredential

PROBLEM_MISSING = "No DCDN API token saved yet."
PROBLEM_INVALID = "DCDN rejected your API token."

_CACHE_ATTR = "_accounts_dcdn_credential"


def request_credential(request) -> DcdnCredential | None:
    """The logged-in user's credential, fetched at most once per request."""
    if not hasattr(request, _CACHE_ATTR):
        user = getattr(request, "user", None)
        credential = None
        if user is not None and user.is_authenticated:
            credential = (
                DcdnCredential.objects.filter(owner_id=user.pk).defer("token_encrypted").first()
            )
        setattr(request, _CACHE_ATTR, credential)
    return getattr(request, _CACHE_ATTR)


def token_problem(credential: DcdnCredential | None) -> str:
    if credential is None:
        return PROBLEM_MISSING
    if credential.status == DcdnCredential.Status.INVALID:
        return PROBLEM_INVALID
    return ""


def token_state(request) -> dict:
    """``dcdn_token_problem`` (banner text, "" when fine) and ``dcdn_credential``.

    Lazy: a fragment that never shows the banner costs no query; a page costs one.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"dcdn_token_problem": "", "dcdn_credential": None}
    return {
        "dcdn_token_problem": SimpleLazyObject(lambda: token_problem(request_credential(request))),
        "dcdn_credential": SimpleLazyObject(lambda: request_credential(request)),
    }
