from celery import shared_task

from notifications import services


@shared_task(name="notifications.tasks.webhook_delivery_send")
def webhook_delivery_send(delivery_id):
    delivery = services.webhook_delivery_attempt(delivery_id=delivery_id)
    return None if delivery is None else delivery.status


@shared_task(name="notifications.tasks.webhook_deliveries_sweep")
def webhook_deliveries_sweep():
    return services.webhook_deliveries_sweep()
