import secrets
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Create a panel login. Without --password-stdin a strong password is generated "
        "and printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input.",
        )
        parser.add_argument(
            "--superuser", action="store_true", help="Give access to the Django admin."
        )

    def handle(self, *args, **options):
        User = get_user_model()
        username = options["username"].strip()
        if not username:
            raise CommandError("--username must not be empty.")
        if User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"User {username!r} already exists; set a new password with "
                f"`manage.py changepassword {username}`."
            )
        generated = not options["password_stdin"]
        if generated:
            password = secrets.token_urlsafe(18)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on standard input.")
        candidate = User(**{User.USERNAME_FIELD: username, "email": options["email"]})
        try:
            validate_password(password, user=candidate)
        except ValidationError as exc:
            raise CommandError("Password refused: " + " ".join(exc.messages)) from None
        with transaction.atomic():
            if options["superuser"]:
                User.objects.create_superuser(username, options["email"], password)
            else:
                User.objects.create_user(username, options["email"], password)
        kind = "superuser" if options["superuser"] else "user"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} {username!r}."))
        if generated:
            # Shown once, on the operator's terminal; it is stored only as a hash.
            self.stdout.write(f"Password: {password}")
