from django.contrib import admin

from .models import DcdnCredential


@admin.register(DcdnCredential)
class DcdnCredentialAdmin(admin.ModelAdmin):
    """Read-only: the ciphertext is never shown and a token is never entered here (the
    token page verifies it first)."""

    list_display = ("owner", "token_ending", "status", "verified_at", "invalid_since", "updated_at")
    list_filter = ("status",)
    search_fields = ("owner__username", "owner__email")
    fields = (
        "owner",
        "token_ending",
        "status",
        "verified_at",
        "invalid_since",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    list_select_related = ("owner",)

    @admin.display(description="Token")
    def token_ending(self, obj: DcdnCredential) -> str:
        return f"••••{obj.last4}"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("token_encrypted")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
