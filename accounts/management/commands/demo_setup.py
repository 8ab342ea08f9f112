import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import credential_store_unverified


class Command(BaseCommand):
    help = (
        "Idempotent demo set-up: a 'demo' login (password generated and printed on first "
        "run only) with the simulator's token saved for it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--token", default="demo-token", help="DCDN token to save.")
        parser.add_argument("--username", default="demo")

    def handle(self, *args, **options):
        User = get_user_model()
        username = options["username"]
        with transaction.atomic():
            user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(username, "", password)
                self.stdout.write(f"Demo login: {username} / {password}")
            else:
                self.stdout.write(
                    f"User {username!r} exists already; its password is unchanged. To set a "
                    f"new one: python manage.py changepassword {username}"
                )
            try:
                credential = credential_store_unverified(user=user, token=options["token"])
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Saved a DCDN token ending in {credential.last4} for {username!r}.")
