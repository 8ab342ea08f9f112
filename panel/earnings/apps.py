from django.apps import AppConfig


class EarningsConfig(AppConfig):
    name = "panel.earnings"
    label = "earnings"

    def ready(self) -> None:
        from accounts.signals import credential_changed

        from .selectors import earnings_cache_forget

        def forget(sender, *, owner_key: str, **kwargs) -> None:
            # Figures read with a previous token may belong to another DCDN account.
            earnings_cache_forget(owner_key=owner_key)

        credential_changed.connect(forget, weak=False, dispatch_uid="earnings-cache-forget")
