"""Stop (or resume) a worker taking new jobs from a queue; what it runs now finishes."""

from django.core.management.base import BaseCommand, CommandError

from portal.celery import app


class Command(BaseCommand):
    help = (
        "Drain a Celery worker: it stops consuming the queue (default gpu) and finishes its running job. "
        "Use --resume to let it consume again. Needs a broker with remote control (Redis, RabbitMQ)."
    )

    def add_arguments(self, parser):
        parser.add_argument("worker", help="The worker's node name, e.g. celery@gpu-node-1")
        parser.add_argument("--queue", default="gpu")
        parser.add_argument("--resume", action="store_true", help="Consume the queue again.")
        parser.add_argument("--timeout", type=float, default=5.0)

    def handle(self, *args, worker, queue, resume, timeout, **options):
        control = app.control.add_consumer if resume else app.control.cancel_consumer
        replies = []
        for _ in range(3):  # a worker that just reconnected to the broker may miss the first broadcast
            replies = control(queue, destination=[worker], reply=True, timeout=timeout)
            if replies:
                break
        if not replies:
            raise CommandError(f"no reply from {worker}: is it running, and is the name exact?")
        for reply in replies:
            for node, answer in reply.items():
                self.stdout.write(f"{node}: {answer}")
