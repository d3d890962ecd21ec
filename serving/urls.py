"""Deployment pages of the dashboard."""

from django.urls import path

from serving import views

app_name = "deployments"
urlpatterns = [
    path("", views.deployment_list_page, name="list"),
    path("<slug:slug>/", views.endpoint_detail_page, name="detail"),
]
