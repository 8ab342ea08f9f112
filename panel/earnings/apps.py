from django.apps import AppConfig


class EarningsConfig(AppConfig):
    name = "panel.earnings"
    label = "earnings"
