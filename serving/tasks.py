from celery import shared_task

from serving import runner


@shared_task(name="serving.tasks.deployment_start_task")
def deployment_start_task(deployment_id):
    runner.deployment_start(deployment_id)


@shared_task(name="serving.tasks.deployment_stop_task")
def deployment_stop_task(deployment_id):
    runner.deployment_stop(deployment_id)


@shared_task(name="serving.tasks.deployments_health_check_task")
def deployments_health_check_task():
    return runner.deployments_health_check()
