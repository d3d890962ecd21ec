from celery import shared_task

from jobs import launcher, services


@shared_task(name="jobs.tasks.job_run")
def job_run(job_id):
    launcher.job_execute(job_id)


@shared_task(name="jobs.tasks.jobs_reap")
def jobs_reap():
    return services.jobs_reap()
