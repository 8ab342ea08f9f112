from django.urls import path

from . import views

app_name = "instances"

urlpatterns = [
    path("instances/", views.instance_list, name="list"),
    path("instances/new/", views.instance_create, name="create"),
    path("instances/<str:instance_id>/", views.instance_detail, name="detail"),
    *(
        path(
            f"instances/<str:instance_id>/{action}/",
            views.instance_action,
            {"action": action},
            name=action,
        )
        for action in ("start", "stop", "restart")
    ),
    path(
        "instances/<str:instance_id>/reset-password/",
        views.instance_reset_password,
        name="reset_password",
    ),
    path("instances/<str:instance_id>/ssh-key/", views.instance_ssh_key, name="ssh_key"),
    path("instances/<str:instance_id>/destroy/", views.instance_destroy, name="destroy"),
    path("operations/", views.operation_list, name="operations"),
    path("operations/<int:pk>/", views.operation_detail, name="operation"),
    path("operations/<int:pk>/progress/", views.operation_progress, name="operation_progress"),
    path("operations/<int:pk>/reveal/", views.operation_reveal, name="operation_reveal"),
]
