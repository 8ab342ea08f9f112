from django.apps import AppConfig


class DcdnConfig(AppConfig):
    name = "panel.dcdn"
    label = "dcdn"
