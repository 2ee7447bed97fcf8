"""The certificate chain: its structure as notation-core-go checks it, the trust store and
whether the chain holds one of its certificates, each certificate's validity in time, and the
revocation markers that cannot be checked natively."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from ...policy import NotationAuthority
from .envelope import _STORE_TYPE, SCHEME_SIGNING_AUTHORITY, _algorithm_of, _Envelope
from .errors import NotationProblem, _short
from .goformat import _go_name, _rfc1123z

_WEAK_HASHES = (hashes.SHA1, hashes.MD5)

# -- integrity: the certificate chain --------------------------------------------------------------


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Names chain and ``parent``'s key made ``child``'s signature (not with SHA-1 or MD5)."""
    if child.issuer.public_bytes() != parent.subject.public_bytes():
        return False
    try:
        if isinstance(child.signature_hash_algorithm, _WEAK_HASHES):
            return False
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _check_chain(chain: Sequence[x509.Certificate]) -> None:
    """notation-core-go's ValidateCodeSigningCertChain, without time checks (those come later)."""
    if len(chain) == 1:
        cert = chain[0]
        if not _issued_by(cert, cert):
            raise NotationProblem(
                f'the single certificate "{_go_name(cert.subject)}" of the chain is not '
                "self-signed (a chain must end at a self-signed root)"
            )
        _check_leaf(cert)
        return
    for i, cert in enumerate(chain):
        subject = _go_name(cert.subject)
        if i == len(chain) - 1:
            if not _issued_by(cert, cert):
                raise NotationProblem(
                    f'root certificate "{subject}" is not self-signed; the chain must end with a '
                    "self-signed root"
                )
        else:
            if _issued_by(cert, cert):
                where = "leaf" if i == 0 else "intermediate"
                raise NotationProblem(f'{where} certificate "{subject}" is self-signed')
            if not _issued_by(cert, chain[i + 1]):
                raise NotationProblem(
                    f'certificate "{subject}" is not issued by "{_go_name(chain[i + 1].subject)}"'
                )
        if i == 0:
            _check_leaf(cert)
        else:
            _check_ca(cert, i - 1)


def _extension(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # a duplicate or malformed extension
        raise NotationProblem(
            f'certificate "{_go_name(cert.subject)}" has malformed extensions: {_short(str(exc))}'
        ) from None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    ext = _extension(cert, x509.KeyUsage)
    subject = _go_name(cert.subject)
    if ext is None:
        raise NotationProblem(f'certificate "{subject}": key usage extension must be present')
    if not ext.critical:
        raise NotationProblem(f'certificate "{subject}": key usage extension must be critical')
    value: x509.KeyUsage = ext.value
    return value


def _check_leaf(cert: x509.Certificate) -> None:
    subject = _go_name(cert.subject)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise NotationProblem(f'signing certificate "{subject}" is a CA certificate')
    usage = _key_usage(cert)
    if not usage.digital_signature:
        raise NotationProblem(
            f'signing certificate "{subject}": key usage must have digital signature set'
        )
    forbidden = [
        name
        for name, on in (
            ("KeyEncipherment", usage.key_encipherment),
            ("DataEncipherment", usage.data_encipherment),
            ("KeyAgreement", usage.key_agreement),
            ("CertSign", usage.key_cert_sign),
            ("CRLSign", usage.crl_sign),
            ("EncipherOnly", usage.key_agreement and usage.encipher_only),
            ("DecipherOnly", usage.key_agreement and usage.decipher_only),
        )
        if on
    ]
    if forbidden:
        raise NotationProblem(
            f'signing certificate "{subject}": key usage must be digital signature only, '
            f"found {', '.join(forbidden)}"
        )
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        excluded = {
            ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuth",
            ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuth",
            ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
            ExtendedKeyUsageOID.TIME_STAMPING: "Timestamping",
            ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any",
        }
        for oid in eku.value:
            if oid in excluded:
                raise NotationProblem(
                    f'signing certificate "{subject}": extended key usage must not contain '
                    f"{excluded[oid]}"
                )
    _algorithm_of(cert)


def _check_ca(cert: x509.Certificate, below: int) -> None:
    subject = _go_name(cert.subject)
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        raise NotationProblem(
            f'certificate "{subject}": basic constraints must be present with CA set to true'
        )
    path_length = constraints.value.path_length
    if path_length is not None and path_length < below:
        raise NotationProblem(
            f'certificate "{subject}": path length {path_length} is shorter than the '
            f"{below} CA certificate(s) below it"
        )
    if not _key_usage(cert).key_cert_sign:
        raise NotationProblem(f'certificate "{subject}": key usage must have key cert sign set')


# -- trust store and authenticity ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TrustStore:
    certificates: tuple[x509.Certificate, ...]
    ders: frozenset[bytes]


@lru_cache(maxsize=64)
def _trust_store(pem: str) -> _TrustStore:
    """The authority's certificates; like notation, only CA or self-signed ones are allowed."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(pem.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        raise NotationProblem("the trust store holds no readable PEM certificate") from None
    for cert in certs:
        constraints = _extension(cert, x509.BasicConstraints)
        is_ca = constraints is not None and constraints.value.ca
        if not is_ca and not _self_signature_ok(cert):
            raise NotationProblem(
                f'trust store certificate "{_go_name(cert.subject)}" is not a CA certificate or '
                "self-signed signing certificate (Notation refuses such a trust store)"
            )
    return _TrustStore(certs, frozenset(c.public_bytes(Encoding.DER) for c in certs))


def _self_signature_ok(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _authenticity(env: _Envelope, spec: NotationAuthority, store: _TrustStore) -> str:
    needed = _STORE_TYPE[env.scheme]
    if spec.trust_store_type != needed:
        return (
            f"the signature uses signing scheme {env.scheme}, which needs a trust store of type "
            f"{needed}, and this authority's is of type {spec.trust_store_type}"
        )
    if not any(c.public_bytes(Encoding.DER) in store.ders for c in env.chain):
        return "the signature's certificate chain does not contain any trusted certificate"
    return ""


# -- time and revocation ---------------------------------------------------------------------------


def _authentic_timestamp(env: _Envelope, now: datetime) -> str:
    if env.scheme == SCHEME_SIGNING_AUTHORITY:
        at = env.signing_time
        for cert in env.chain:
            if at < cert.not_valid_before_utc or at > cert.not_valid_after_utc:
                return (
                    f'certificate "{_go_name(cert.subject)}" was not valid when the digital '
                    f'signature was produced at "{_rfc1123z(at)}"'
                )
        return ""
    for cert in env.chain:
        subject = _go_name(cert.subject)
        if now < cert.not_valid_before_utc:
            return (
                f'verification time is before certificate "{subject}" validity period, it will '
                f'be valid from "{_rfc1123z(cert.not_valid_before_utc)}"'
            )
        if now > cert.not_valid_after_utc:
            reason = (
                f'verification time is after certificate "{subject}" validity period, it was '
                f'expired at "{_rfc1123z(cert.not_valid_after_utc)}"'
            )
            if env.timestamp:
                reason += (
                    " (the envelope's RFC 3161 timestamp is not verified natively, so it cannot "
                    "vouch that the signature was made while the certificate was valid)"
                )
            return reason
    return ""


def _revocation(chain: Sequence[x509.Certificate]) -> str:
    """Certificates below the root that name a CRL or an OCSP responder cannot be checked here.

    The root is never revocable, and a certificate that names neither is "non-revokable" in
    notation-go's terms, which passes.
    """
    for cert in chain[:-1]:
        names = []
        dps = _extension(cert, x509.CRLDistributionPoints)
        if dps is not None and any(
            isinstance(n, x509.UniformResourceIdentifier)
            for dp in dps.value
            for n in dp.full_name or ()
        ):
            names.append("a CRL distribution point")
        aia = _extension(cert, x509.AuthorityInformationAccess)
        if aia is not None and any(
            d.access_method == AuthorityInformationAccessOID.OCSP for d in aia.value
        ):
            names.append("an OCSP responder")
        if names:
            return (
                f'revocation of "{_go_name(cert.subject)}" cannot be checked natively (CRL/OCSP): '
                f"the certificate names {' and '.join(names)}"
            )
    return ""
