from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.PanelLoginView.as_view(), name="login"),
    path("logout/", views.PanelLogoutView.as_view(), name="logout"),
    path("password/", views.PanelPasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/", views.PanelPasswordChangeDoneView.as_view(), name="password_change_done"
    ),
    path("token/", views.token_page, name="token"),
    path("reauth/", views.reauth, name="reauth"),
    path("signup/", views.signup, name="signup"),
]
