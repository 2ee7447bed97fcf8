"""Reach a pullgate daemon: ``unix:///path`` or ``tcp://host:port`` (TLS, optionally mTLS).

Imports only ``grpc`` and the generated stubs: ``pullgate-containerd`` uses it on every pull.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from .v1 import verifier_pb2_grpc as pb_grpc

__all__ = ["ClientTLS", "connect", "grpc_target"]


@dataclass(frozen=True, slots=True)
class ClientTLS:
    ca: str = ""  # PEM file of the CA that signed the server certificate
    cert: str = ""  # client certificate and key, for mTLS
    key: str = ""


def grpc_target(address: str) -> str:
    if address.startswith("unix://"):
        return address
    if address.startswith("tcp://"):
        return address[len("tcp://") :]
    raise ValueError(f"address {address!r}: use unix:///path/to/socket or tcp://host:port")


def connect(
    address: str, tls: ClientTLS | None = None
) -> tuple[grpc.Channel, pb_grpc.ImageVerifierStub]:
    """A channel and stub. TCP is always TLS; unix sockets rely on file permissions."""
    target = grpc_target(address)
    if address.startswith("unix://"):
        channel = grpc.insecure_channel(target)
    else:
        tls = tls or ClientTLS()
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(tls.ca).read_bytes() if tls.ca else None,
            private_key=Path(tls.key).read_bytes() if tls.key else None,
            certificate_chain=Path(tls.cert).read_bytes() if tls.cert else None,
        )
        channel = grpc.secure_channel(target, creds)
    return channel, pb_grpc.ImageVerifierStub(channel)
