from django.urls import path

from datasets.consumers import DatasetConsumer

websocket_urlpatterns = [path("ws/datasets/<int:dataset_id>/", DatasetConsumer.as_asgi())]
