def csp_nonce(request):
    """django-htmx's {% htmx_script %} looks for csp_nonce in the context; django-csp
    puts it on the request."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
