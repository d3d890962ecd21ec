from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Training jobs: state machine, leases, events, the launcher and the live feed."""

    name = "jobs"
