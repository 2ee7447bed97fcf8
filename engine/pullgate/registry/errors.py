"""What registry reads raise: :class:`RegistryError`, with a subclass for each kind of failure."""

from __future__ import annotations

__all__ = [
    "BadReference",
    "BadResponse",
    "DigestMismatch",
    "NotFound",
    "RegistryError",
    "TooLarge",
    "Unauthorized",
    "Unreachable",
]


class RegistryError(Exception):
    """A registry read failed. ``reason`` is one line that names the host and repository and says
    what to do; it never contains a password, token or ``Authorization`` header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class NotFound(RegistryError):
    """The repository, tag, manifest or blob does not exist (404)."""


class Unauthorized(RegistryError):
    """The registry refused access (401/403) after authentication was attempted."""


class Unreachable(RegistryError):
    """No HTTP answer: connection refused or reset, DNS failure, TLS failure or a timeout."""


class TooLarge(RegistryError):
    """A body is larger than the bound set for it; nothing over the bound was read."""


class DigestMismatch(RegistryError):
    """Content does not hash to the digest it was asked for: it must not be used."""


class BadReference(RegistryError, ValueError):
    """A repository, tag or digest argument that is not valid, refused before any request.

    Also a ``ValueError``; a ``RegistryError`` because verifiers pass digests read from remote
    manifests, and a malformed one there is the registry's content at fault, not the caller.
    """


class BadResponse(RegistryError):
    """An answer this client cannot use: not JSON, wrong shape, redirect loop, unexpected status,
    or a failure status that persisted through every retry."""
