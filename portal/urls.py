from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from jobs.api.views import JobCallbackView
from portal.api_router import router

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", obtain_auth_token, name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/jobs/<int:pk>/callbacks/", JobCallbackView.as_view(), name="job-callbacks"),
    path("api/v1/", include(router.urls)),
    path("datasets/", include("datasets.urls")),
]
