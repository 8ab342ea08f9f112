"""``manage.py dcdn_simulator``: serve the DCDN API simulator until SIGINT or SIGTERM."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from panel.dcdn.simulator.cli import add_arguments, serve_until_signalled, server_from_options


class Command(BaseCommand):
    help = "Serve the DCDN API simulator on 127.0.0.1 (for the demo, tests and benchmarks)."
    # The simulator uses nothing of the project, so a half-built project must not stop it.
    requires_system_checks = []

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        serve_until_signalled(server_from_options(options), announce)
