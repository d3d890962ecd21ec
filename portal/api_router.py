"""The one API router: each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from datasets.api.views import DatasetViewSet
from jobs.api.views import TrainingJobViewSet, ValidationJobViewSet
from models_registry.api.views import ModelVersionViewSet, RegisteredModelViewSet
from notifications.api.views import NotificationViewSet, WebhookDeliveryViewSet, WebhookEndpointViewSet
from serving.api.inference import InferenceJobViewSet
from serving.api.views import DeploymentViewSet, EndpointViewSet

router = DefaultRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")
router.register("validation-jobs", ValidationJobViewSet, basename="validation-job")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("registered-models", RegisteredModelViewSet, basename="registered-model")
router.register("deployments", DeploymentViewSet, basename="deployment")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("inference-jobs", InferenceJobViewSet, basename="inference-job")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("notifications", NotificationViewSet, basename="notification")
