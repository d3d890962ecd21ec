"""Framework adapters that train, evaluate and serve models.

Nothing here imports Django: each CLI is configured by environment variables and
talks to the portal only over HTTP, so it runs unchanged as a subprocess of a
Celery worker or as a Kubernetes Job.
"""
