"""Model pages of the dashboard."""

from django.urls import path

from models_registry import views

app_name = "models"
urlpatterns = [
    path("", views.model_list_page, name="list"),
    path("<int:pk>/", views.model_detail_page, name="detail"),
]
