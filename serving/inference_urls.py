"""Inference job pages of the dashboard."""

from django.urls import path

from serving import views

app_name = "inference"
urlpatterns = [
    path("", views.inference_list_page, name="list"),
    path("<int:pk>/", views.inference_detail_page, name="detail"),
]
