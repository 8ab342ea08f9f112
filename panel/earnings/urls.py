from django.urls import path

from . import views

app_name = "earnings"

urlpatterns = [
    path("", views.summary, name="summary"),
    path("nodes/<str:node_id>/", views.node, name="node"),
    path("nodes/<str:node_id>/earnings.csv", views.node_csv, name="node_csv"),
    path("home-card/recent/", views.home_recent, name="home_recent"),
    path("payout/", views.payout, name="payout"),
    path("payout/confirm/<str:confirm_token>/", views.payout_confirm, name="payout_confirm"),
    path("payouts/", views.payouts, name="payouts"),
    path("payouts/<int:pk>/", views.payout_detail, name="payout_detail"),
]
