from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "panel.instances"
    label = "instances"
