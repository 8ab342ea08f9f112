from django.contrib import admin

from .models import Operation


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    """Read-only: operations change only through their tasks. The encrypted root password
    is never shown, only whether one is waiting."""

    list_display = (
        "id",
        "kind",
        "instance_name",
        "state",
        "step",
        "owner_key",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "state")
    search_fields = ("instance_name", "instance_id", "owner_key")
    fields = (
        "owner",
        "owner_key",
        "kind",
        "state",
        "step",
        "instance_id",
        "instance_name",
        "params",
        "attempts",
        "error_code",
        "error_message",
        "error_field",
        "note",
        "password_waiting",
        "password_expires_at",
        "password_revealed_at",
        "submitted_at",
        "created_at",
        "updated_at",
        "finished_at",
        "next_poll_at",
    )
    readonly_fields = fields

    @admin.display(boolean=True, description="Password waiting to be revealed")
    def password_waiting(self, obj: Operation) -> bool:
        return obj.has_password_to_reveal

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
