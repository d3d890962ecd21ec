"""Dashboard pages; the project's URLconf includes them under datasets/."""

from django.urls import path

from datasets.views import dataset_detail_page, dataset_list_page

app_name = "datasets"
urlpatterns = [
    path("", dataset_list_page, name="list"),
    path("<int:pk>/", dataset_detail_page, name="detail"),
]
