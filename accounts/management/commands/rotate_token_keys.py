from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import SecretUnreadable, rotate_secret
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
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {len(rotated)} tokens under the newest key.")
        )
