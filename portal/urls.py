from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from jobs.api.views import JobCallbackView
from portal.api_router import router
from portal.views import home_page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", obtain_auth_token, name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/jobs/<int:pk>/callbacks/", JobCallbackView.as_view(), name="job-callbacks"),
    path("api/v1/", include(router.urls)),
    # The dashboard.
    path("", home_page, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("datasets/", include("datasets.urls")),
    path("training/", include("jobs.urls")),
    path("models/", include("models_registry.urls")),
    path("deployments/", include("serving.urls")),
    path("inference/", include("serving.inference_urls")),
]
