"""A verification request as pullgate's layers pass it around (independent of gRPC)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .reference import InvalidReference, parse_digest

__all__ = ["OPERATIONS", "Descriptor", "InvalidRequest", "Request", "check_request"]

OPERATIONS = ("pull", "run")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_EMPTY: Mapping[str, str] = MappingProxyType({})


class InvalidRequest(ValueError):
    """A request that cannot be judged; the message says which field is wrong."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    """The OCI descriptor containerd resolved for the image."""

    media_type: str = ""
    digest: str = ""
    size: int = 0
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    artifact_type: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    image_name: str
    descriptor: Descriptor = field(default_factory=Descriptor)
    operation: str = "pull"
    namespace: str = ""
    annotations: Mapping[str, str] = field(
        default_factory=lambda: _EMPTY
    )  # pod annotations, when known
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # pod labels, when known
    pod_name: str = ""
    pod_uid: str = ""


def check_request(request: Request, *, require_digest: bool) -> Request:
    """Validate a request (and return it, for chaining)."""
    if not request.image_name:
        raise InvalidRequest("image_name is empty; give the image reference to verify")
    digest = request.descriptor.digest
    if digest:
        try:
            parse_digest(digest)
        except InvalidReference as exc:
            raise InvalidRequest(f"descriptor digest: {exc}") from None
    elif require_digest:
        raise InvalidRequest("descriptor digest is empty; give the resolved digest (algo:hex)")
    operation = request.operation or "pull"
    if operation not in OPERATIONS:
        raise InvalidRequest(f"operation {operation!r} is not one of: {', '.join(OPERATIONS)}")
    if request.namespace and not _NAMESPACE.fullmatch(request.namespace):
        raise InvalidRequest(
            f"namespace {request.namespace[:80]!r} is not a Kubernetes namespace name "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    return request  # an empty operation means "pull" (context.py reads it that way)
