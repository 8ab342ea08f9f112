"""Error reports that never carry a secret, DEBUG included.

Django's SafeExceptionReporterFilter switches itself off when DEBUG is on, so a DEBUG
error page would print a token typed into a form or held in a local variable. This
filter is always on, and besides Django's sensitive_* markers it blanks every local
variable (and dict entry) whose name looks secret (token, password, key, authorization),
in every frame, including the DCDN client's.

Installed per request by ``@secret_error_reports``; set
``DEFAULT_EXCEPTION_REPORTER_FILTER = "accounts.debug.PanelExceptionReporterFilter"`` to
cover every view.
"""

from __future__ import annotations

from functools import wraps

from django.views.debug import SafeExceptionReporterFilter


class PanelExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]


_FILTER = PanelExceptionReporterFilter()


def secret_error_reports(view):
    """View decorator: error reports for this request use PanelExceptionReporterFilter."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        request.exception_reporter_filter = _FILTER
        return view(request, *args, **kwargs)

    return wrapper
