from celery import shared_task

from jobs import launcher, services


@shared_task(name="jobs.tasks.training_job_run")
def training_job_run(job_id):
    launcher.training_job_execute(job_id)


@shared_task(name="jobs.tasks.training_jobs_reap")
def training_jobs_reap():
    return services.training_jobs_reap()
