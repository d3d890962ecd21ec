from serving.models import Deployment


def deployment_list(*, user):
    queryset = Deployment.objects.select_related("model_version__registered_model")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)
