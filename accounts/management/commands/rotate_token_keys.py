from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import SecretUnreadable, rotate_secret, short_lived_secret_fields
from accounts.models import DcdnCredential


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored DCDN token under the newest key in TOKEN_ENCRYPTION_KEYS. "
        "Run it after putting a new key first; remove the old key only afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only check that every token can be read; change nothing.",
        )

    def handle(self, *args, **options):
        with transaction.atomic():
            rows = list(
                DcdnCredential.objects.select_for_update().select_related("owner").order_by("pk")
            )
            # Every row is read first, so one unreadable token leaves all rows unchanged.
            rotated = []
            for row in rows:
                try:
                    rotated.append((row.pk, rotate_secret(row.token_encrypted)))
                except SecretUnreadable:
                    owner = row.owner
                    raise CommandError(
                        f"The DCDN token of user {owner.get_username()!r} (id {owner.pk}) "
                        "cannot be read with any key in TOKEN_ENCRYPTION_KEYS. Nothing was "
                        "changed. Add back the key it was encrypted with, or remove that "
                        "user's token so they can save it again."
                    ) from None
            if options["check"]:
                self.stdout.write(f"All {len(rows)} stored tokens can be read.")
                return
            for pk, ciphertext in rotated:
                # update(), not save(): rotation is not a change the owner made.
                DcdnCredential.objects.filter(pk=pk).update(token_encrypted=ciphertext)
            secrets_rotated, secrets_wiped = self._rotate_short_lived_secrets()
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {len(rotated)} tokens under the newest key.")
        )
        if secrets_rotated or secrets_wiped:
            self.stdout.write(
                f"Re-encrypted {secrets_rotated} one-time secrets; wiped {secrets_wiped} "
                "that no key could read (their owners can ask for new ones)."
            )

    def _rotate_short_lived_secrets(self) -> tuple[int, int]:
        rotated = wiped = 0
        for model_label, field in short_lived_secret_fields():
            model = apps.get_model(model_label)
            rows = model.objects.select_for_update().exclude(**{field: ""}).values_list("pk", field)
            for pk, ciphertext in rows:
                try:
                    new_value = rotate_secret(ciphertext)
                    rotated += 1
                except SecretUnreadable:
                    new_value = ""
                    wiped += 1
                model.objects.filter(pk=pk).update(**{field: new_value})
        return rotated, wiped
