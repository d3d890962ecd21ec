"""The live feed of one data set's ingest: a snapshot from the database, then progress and the outcome."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from datasets.events import dataset_group
from datasets.selectors import dataset_list, dataset_snapshot


class DatasetConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        dataset_id = self.scope["url_route"]["kwargs"]["dataset_id"]
        # Join before reading the snapshot, so no event falls between the two.
        self.group_name = dataset_group(dataset_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        snapshot = await self._snapshot(user, dataset_id)
        if snapshot is None:  # not found and not yours look the same
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            del self.group_name
            await self.close(code=4404)
            return
        await self.accept()
        await self.send_json(snapshot)

    @database_sync_to_async
    def _snapshot(self, user, dataset_id):
        dataset = dataset_list(user=user).filter(pk=dataset_id).first()
        return None if dataset is None else dataset_snapshot(dataset)

    async def disconnect(self, code):
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "resync":
            snapshot = await self._snapshot(self.scope["user"], self.scope["url_route"]["kwargs"]["dataset_id"])
            if snapshot:
                await self.send_json(snapshot)

    async def dataset_event(self, event):
        await self.send_json(event["message"])
