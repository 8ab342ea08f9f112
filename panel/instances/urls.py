from django.urls import path

from . import views

app_name = "instances"

urlpatterns = [
    path("instances/", views.instance_list, name="list"),
    path("operations/", views.operation_list, name="operations"),
]
