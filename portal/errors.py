"""Domain errors raised by services; the API and the admin translate them."""


class ApplicationError(Exception):
    """A request the domain refuses; `code` is stable and machine-readable."""

    status_code = 400
    code = "invalid"
    retry_after = None

    def __init__(self, message, *, code=None, fields=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class ConflictError(ApplicationError):
    """The object is not in a state that allows the change."""

    status_code = 409
    code = "conflict"


class ForbiddenError(ApplicationError):
    """The user may see the object but not do this to it."""

    status_code = 403
    code = "forbidden"
