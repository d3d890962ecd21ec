"""Uploads as they stream in: refused past the size limit (not after filling the disk), and hashed."""

import hashlib

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from portal.errors import ApplicationError


def _too_large(size):
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    return ApplicationError(
        f"The upload is {size} bytes or more; the limit is {limit}.",
        code="too_large",
        fields={"file": ["File too large."]},
    )


class DatasetUploadHandler(FileUploadHandler):
    """Counts and hashes the bytes of every uploaded file, and stops the upload past the limit.

    It runs first; the temporary files the handlers after it opened are closed
    (and so removed) before the refusal. `sha256[field_name]` holds each
    file's digest once it is complete, so the service need not read it again.
    """

    def __init__(self, request=None, limit=0):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.sha256 = {}
        self._digest = None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self._digest = hashlib.sha256()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            for handler in self.request.upload_handlers:
                if handler is not self and hasattr(handler, "file"):
                    handler.file.close()
            raise _too_large(self.received)
        self._digest.update(raw_data)
        return raw_data

    def file_complete(self, file_size):
        self.sha256[self.field_name] = self._digest.hexdigest()
        return None


def limit_upload_size(request):
    """Before the body is parsed: refuse by Content-Length, then count and hash what streams in.

    Returns the handler (None when the body was parsed already).
    """
    limit = settings.DATASET_MAX_UPLOAD_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    # The multipart envelope (boundaries, the other fields) adds a little to the file itself.
    if declared > limit + 64 * 1024:
        raise _too_large(declared)
    django_request = request._request
    if getattr(django_request, "_files", None) is not None:
        return None
    handler = DatasetUploadHandler(django_request, limit)
    django_request.upload_handlers.insert(0, handler)
    return handler
