"""The project's own exceptions. Library errors are translated into these at the edges."""


class DialerError(Exception):
    """Something went wrong in the dialer."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class SettingsError(DialerError):
    """The configuration is not valid."""


class UsageError(DialerError):
    """A command was called with values it cannot use."""


class NotFound(DialerError):
    """No such record."""


class InvalidPhone(DialerError):
    """The phone number cannot be called."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
