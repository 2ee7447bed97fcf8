"""Sigstore trusted roots, pinned: what keyless and bundle verification trust.

``production`` and ``staging`` are the ``trusted_root.json`` files the installed sigstore
package ships, read by path. Any other value is a path to a user's file (an air-gapped
cluster's private Sigstore). The user cache (``~/.cache/sigstore-python``) is never consulted:
what a node trusts is what its policy names.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key

__all__ = ["Authority", "Log", "TrustRoot", "TrustRootError", "load_root", "shipped_root_path"]

_SHIPPED = {
    "production": "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
    "staging": "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
}
_lock = threading.Lock()
_cache: dict[str, tuple[float, TrustRoot]] = {}


class TrustRootError(Exception):
    """A trusted root that cannot be used; the message names the file and what is wrong."""


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True, slots=True)
class Validity:
    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when <= self.end)


@dataclass(frozen=True, slots=True)
class Log:
    """A transparency log (Rekor) or a certificate transparency log, by its key."""

    base_url: str
    log_id: bytes  # SHA-256 of the DER public key, as logs name themselves
    key: PublicKeyTypes
    key_details: str
    valid: Validity


@dataclass(frozen=True, slots=True)
class Authority:
    """A certificate authority (Fulcio) or a timestamp authority: chain leaf-side first."""

    name: str
    chain: tuple[x509.Certificate, ...]
    valid: Validity


@dataclass(frozen=True, slots=True)
class TrustRoot:
    source: str  # "production", "staging" or the file
    path: Path
    tlogs: tuple[Log, ...]
    ctlogs: tuple[Log, ...]
    certificate_authorities: tuple[Authority, ...]
    timestamp_authorities: tuple[Authority, ...]

    def tlog(self, log_id: bytes) -> Log | None:
        return next((log for log in self.tlogs if log.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> Log | None:
        return next((log for log in self.ctlogs if log.log_id == log_id), None)


def shipped_root_path(name: str) -> Path:
    """The trusted_root.json the sigstore package ships for ``production`` or ``staging``."""
    import sigstore  # the package data lives next to it; imported only for its location

    path = Path(sigstore.__file__).parent / "_store" / _SHIPPED[name] / "trusted_root.json"
    if not path.is_file():
        raise TrustRootError(f"the sigstore package does not ship {path}; reinstall sigstore")
    return path


def _log(entry: dict[str, Any], where: str) -> Log:
    key = entry["publicKey"]
    return Log(
        base_url=entry.get("baseUrl", ""),
        log_id=base64.b64decode(entry["logId"]["keyId"]),
        key=load_der_public_key(base64.b64decode(key["rawBytes"])),
        key_details=key.get("keyDetails", ""),
        valid=Validity(
            _time(key.get("validFor", {}).get("start")), _time(key.get("validFor", {}).get("end"))
        ),
    )


def _authority(entry: dict[str, Any]) -> Authority:
    subject = entry.get("subject", {})
    certs = tuple(
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
        for c in entry["certChain"]["certificates"]
    )
    valid = entry.get("validFor", {})
    return Authority(
        name=subject.get("commonName", "") or entry.get("uri", ""),
        chain=certs,
        valid=Validity(_time(valid.get("start")), _time(valid.get("end"))),
    )


def _parse(source: str, path: Path) -> TrustRoot:
    try:
        doc = json.loads(path.read_bytes())
        return TrustRoot(
            source=source,
            path=path,
            tlogs=tuple(_log(e, "tlogs") for e in doc.get("tlogs", [])),
            ctlogs=tuple(_log(e, "ctlogs") for e in doc.get("ctlogs", [])),
            certificate_authorities=tuple(
                _authority(e) for e in doc.get("certificateAuthorities", [])
            ),
            timestamp_authorities=tuple(_authority(e) for e in doc.get("timestampAuthorities", [])),
        )
    except OSError as exc:
        raise TrustRootError(f"cannot read trusted root {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustRootError(
            f"{path} is not a usable trusted_root.json: {type(exc).__name__}: {exc}"
        ) from None


def load_root(spec: str) -> TrustRoot:
    """``production``, ``staging`` or a path; parsed once and re-read when the file changes."""
    path = shipped_root_path(spec) if spec in _SHIPPED else Path(spec)
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise TrustRootError(f"cannot read trusted root {path}: {exc.strerror}") from None
    with _lock:
        hit = _cache.get(str(path))
        if hit is not None and hit[0] == mtime:
            return hit[1]
    root = _parse(spec, path)
    with _lock:
        _cache[str(path)] = (mtime, root)
    return root
