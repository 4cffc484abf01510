"""What can go wrong talking to Asterisk, in the project's own exceptions.

panoramisk and asyncio errors never leave dialer/ami: the adapter translates them into these.
Each docstring is the default message.
"""

from __future__ import annotations

from kernel.errors import DialerError


class AmiError(DialerError):
    """The Asterisk manager interface (AMI) failed."""


class AmiAuthError(AmiError):
    """Asterisk refused the AMI login: check ami.username and ami.secret (manager.conf)."""

    def __init__(self, reason: str = "Authentication failed") -> None:
        super().__init__(f"Asterisk refused the AMI login ({reason}): check ami.username and "
                         "ami.secret (manager.conf)")
        self.reason = reason


class AmiProtocolError(AmiError):
    """Asterisk sent an AMI message the dialer cannot read."""


class AmiRequestError(AmiError):
    """The AMI action cannot be sent as given."""


class AmiTimeout(AmiError):
    """Asterisk did not answer the AMI action in time."""


class AmiNotConnected(AmiError):
    """There is no AMI connection to Asterisk right now."""


class AmiConnectionLost(AmiError):
    """The AMI connection was lost before Asterisk answered the action."""


class AmiActionError(AmiError):
    """Asterisk refused the AMI action."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"Asterisk refused {action}: {message or 'no reason given'}")
        self.action = action
        self.reason = message
