"""The training pages of the dashboard: list, new training, one job."""

from django.urls import path

from jobs import views

app_name = "training"
urlpatterns = [
    path("", views.training_list_page, name="list"),
    path("new/", views.training_new_page, name="new"),
    path("<int:pk>/", views.training_detail_page, name="detail"),
]
