from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "panel.instances"
    label = "instances"

    def ready(self) -> None:
        from accounts.crypto import register_short_lived_secret

        # One-time root passwords are encrypted with the token keys: rotate them too.
        register_short_lived_secret("instances.Operation", "root_password_encrypted")
