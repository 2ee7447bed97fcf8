"""Who a Fulcio certificate says signed, and whether that matches a keyless authority.

Shared by classic cosign signatures and Sigstore bundles. Subjects are the certificate's SAN
values (an email for people, a URI for workflows); the issuer is the OIDC issuer Fulcio put in
its extension. Every Fulcio extension is exposed to CEL under its documented name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2
from cryptography import x509

from ..policy import KeylessAuthority

__all__ = ["CertIdentity", "describe", "mismatch"]

_FULCIO = "1.3.6.1.4.1.57264.1."
# Fulcio's OID arc: .1-.6 hold raw strings (deprecated), .8 onwards DER UTF8Strings.
_EXTENSIONS = {
    1: "issuerV1",
    2: "githubWorkflowTrigger",
    3: "githubWorkflowSHA",
    4: "githubWorkflowName",
    5: "githubWorkflowRepository",
    6: "githubWorkflowRef",
    8: "issuer",
    9: "buildSignerURI",
    10: "buildSignerDigest",
    11: "runnerEnvironment",
    12: "sourceRepositoryURI",
    13: "sourceRepositoryDigest",
    14: "sourceRepositoryRef",
    15: "sourceRepositoryIdentifier",
    16: "sourceRepositoryOwnerURI",
    17: "sourceRepositoryOwnerIdentifier",
    18: "buildConfigURI",
    19: "buildConfigDigest",
    20: "buildTrigger",
    21: "runInvocationURI",
    22: "sourceRepositoryVisibilityAtSigning",
}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@dataclass(frozen=True, slots=True)
class CertIdentity:
    sans: tuple[str, ...]
    issuer: str
    extensions: dict[str, str]

    @property
    def subject(self) -> str:
        return self.sans[0] if self.sans else ""


def _der_utf8(raw: bytes) -> str:
    """The string in a DER UTF8String (tag 0x0c); raw bytes for the legacy extensions."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        length, offset = raw[1], 2
        if length & 0x80:
            n = length & 0x7F
            length, offset = int.from_bytes(raw[2 : 2 + n], "big"), 2 + n
        return raw[offset : offset + length].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def describe(cert: x509.Certificate) -> CertIdentity:
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans += ext.get_values_for_type(x509.RFC822Name)
        sans += ext.get_values_for_type(x509.UniformResourceIdentifier)
        sans += ext.get_values_for_type(x509.DNSName)
        sans += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
        sans += [
            v.value.decode("utf-8", "replace")
            for v in ext.get_values_for_type(x509.OtherName)
            if isinstance(v.value, bytes)
        ]
    except x509.ExtensionNotFound:
        pass
    extensions: dict[str, str] = {}
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith(_FULCIO):
            continue
        tail = oid[len(_FULCIO) :]
        if not tail.isdigit() or int(tail) not in _EXTENSIONS:
            continue
        value: Any = ext.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        n = int(tail)
        extensions[_EXTENSIONS[n]] = _der_utf8(raw) if n >= 8 else raw.decode("utf-8", "replace")
    issuer = extensions.get("issuer") or extensions.get("issuerV1", "")
    extensions.pop("issuerV1", None)
    extensions.setdefault("issuer", issuer)
    return CertIdentity(tuple(sans), issuer, extensions)


@lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def _matches(value: str, exact: str, pattern: str) -> bool:
    if pattern:
        return _regex(pattern).search(value) is not None
    return value == exact


def mismatch(spec: KeylessAuthority, identity: CertIdentity) -> str:
    """Why the certificate's signer is not the one the authority names ("" when it is)."""
    if not _matches(identity.issuer, spec.issuer, spec.issuer_regexp):
        want = spec.issuer or f"a match for {spec.issuer_regexp}"
        return f"issuer is '{identity.issuer or 'missing'}', expected '{want}'"
    if not any(_matches(san, spec.subject, spec.subject_regexp) for san in identity.sans):
        want = spec.subject or f"a match for {spec.subject_regexp}"
        got = ", ".join(identity.sans) or "no subject alternative name"
        return f"subject is '{got}', expected '{want}'"
    return ""
