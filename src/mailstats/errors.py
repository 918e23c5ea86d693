"""The domain errors every layer raises; the web layer turns them into Copernica error bodies."""

from __future__ import annotations


class MailstatsError(Exception):
    """Base of every error that has a message meant for the API user."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(MailstatsError):
    """A parameter, path segment or body that cannot be understood."""


class NotFound(MailstatsError):
    """An ID that does not exist, or that belongs to another account."""

    def __init__(self, message: str = "No entity with supplied ID") -> None:
        super().__init__(message)


class InvalidToken(MailstatsError):
    """A missing, unknown or revoked access token."""

    def __init__(self, message: str = "Invalid access token") -> None:
        super().__init__(message)


class InvalidMethod(MailstatsError):
    """An unknown path or verb."""

    def __init__(self, message: str = "Invalid method") -> None:
        super().__init__(message)


class TooLarge(MailstatsError):
    """A request body over the configured limit."""


class RateLimited(MailstatsError):
    """Too many requests for one token; carries the seconds to wait."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("Rate limit exceeded")
        self.retry_after = retry_after
