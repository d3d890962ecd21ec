"""A user's live notifications: the unread ones from the database first, then each new one."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from notifications.selectors import notification_snapshot
from notifications.services import user_group_name


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        # Join before reading the snapshot: a notification created in between arrives twice
        # (clients key on `id`) rather than not at all.
        self.group_name = user_group_name(user.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json(await self._snapshot())

    @database_sync_to_async
    def _snapshot(self):
        return notification_snapshot(user=self.scope["user"])

    async def disconnect(self, code):
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "resync":
            await self.send_json(await self._snapshot())

    async def notification_created(self, event):
        await self.send_json({"type": "notification", "notification": event["message"]})
