"""The live feed of one job: a snapshot from the database, then one message per event."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from jobs.selectors import job_list, job_snapshot


class JobConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        snapshot = await self._snapshot(user, job_id)
        if snapshot is None:  # not found and not yours look the same
            await self.close(code=4404)
            return
        self.group_name = f"job-{job_id}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json(snapshot)

    @database_sync_to_async
    def _snapshot(self, user, job_id):
        job = job_list(user=user).filter(pk=job_id).first()
        return None if job is None else job_snapshot(job)

    async def disconnect(self, code):
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "resync":
            snapshot = await self._snapshot(self.scope["user"], self.scope["url_route"]["kwargs"]["job_id"])
            if snapshot:
                await self.send_json(snapshot)

    async def job_event(self, event):
        await self.send_json(event["message"])
