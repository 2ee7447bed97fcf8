"""The native Notation verifier against real envelopes made by Notation's own tools.

The oracle is upstream's: `fixtures/notation/PROVENANCE.md` (what each envelope is and how it
must end), the notation-go tests that use each envelope, and the transcripts of the real
`notation verify` v1.3.2 in `fixtures/notation-cli/` (levels, reasons and warning lines). The
e2e OCI layouts are pushed into the real test registry (docker-registry 2.8, no referrers API, so
the `sha256-<hex>` tag fallback is exercised) and verified through the registry client.

A few envelopes are signed here, with keys the fixtures ship (`localkeys/e2e.key`,
`crl/leaf.key`) or made on the spot, for what no fixture has: an unknown critical header, a
retargeted payload signed by a trusted key, ECDSA, a CRL-bearing chain, the signingAuthority
scheme.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import shared_fixtures
from lab.oci_layout import push_layouts
from lab.registry import Registry, free_port, sha256
from pullgate.evidence import Evidence, Target
from pullgate.policy import Authority, KeyAuthority, Mark, NotationAuthority
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.notation_native import (
    COSE,
    JWS,
    NOTATION_ARTIFACT,
    NotationNativeVerifier,
    NotationProblem,
    verify_envelope,
)

MARK = Mark("test", 1, 1)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
NOW = datetime.now(UTC)

# The image every e2e layout holds (517 bytes, tag v1).
E2E_IMAGE = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
E2E_DESC = {"mediaType": OCI_MANIFEST, "digest": E2E_IMAGE, "size": 517}
# The descriptors the other envelopes sign (read from their payloads).
MOCK_DESC = {
    "mediaType": DOCKER_MANIFEST,
    "digest": "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
    "size": 528,
}
PLUGIN_DESC = {
    "mediaType": DOCKER_MANIFEST,
    "digest": "sha256:fe7e9333395060c2f5e63cf36a38fba10176f183b4163a5794e081a480abba5f",
    "size": 942,
}
METADATA_DESC = {
    "mediaType": DOCKER_MANIFEST,
    "digest": "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b",
    "size": 942,
}
ALPINE_DESC = {
    "mediaType": OCI_MANIFEST,
    "digest": "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
    "size": 481,
}
TIMESTAMP_DESC = {
    "mediaType": DOCKER_MANIFEST,
    "digest": "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
    "size": 528,
}
BLOB_DESC = {
    "mediaType": "application/octet-stream",
    "digest": "sha256:c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    "size": 11357,
}

# Verbatim from the real CLI's transcripts (fixtures/notation-cli/transcripts.json).
CLI_EXPIRED_SIG = 'digital signature has expired on "Tue, 27 Jun 2023 13:21:21 +0800"'
CLI_EXPIRED_CERT = (
    'verification time is after certificate "O=Internet Widgits Pty Ltd,ST=Some-State,C=AU" '
    'validity period, it was expired at "Tue, 27 Jun 2023 06:10:00 +0000"'
)
CLI_UNTRUSTED = "the signature's certificate chain does not contain any trusted certificate"
CLI_IDENTITY = (
    "does not match the X.509 trusted identities "
    '[map["C":"US" "CN":"someone-else" "L":"Seattle" "O":"Other Org" "ST":"WA"]]'
)
NOT_NATIVE = "RFC 3161 timestamp is not verified natively"


def logged(check: str, reason: str) -> str:
    """A warning as `notation verify` prints it (after `Warning: `)."""
    return f'{check} was set to "log" and failed with error: {reason}'


# -- fixtures on disk -----------------------------------------------------------------------------


def fx(relative: str) -> Path:
    return shared_fixtures() / "notation" / relative


MOCK = "notation-go/internal/mock/testdata"
TRUST = "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store"
LOCALKEYS = "notation/test/e2e/testdata/config/localkeys"
LAYOUTS = "notation/test/e2e/testdata/registry/oci_layout"
SIGENV = "notation-go/verifier/testdata/timestamp/sigEnv"


def pem(relative: str) -> str:
    data = fx(relative).read_bytes()
    if b"-----BEGIN" not in data:
        data = x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)
    return data.decode()


def chain_of(data: bytes) -> list[bytes]:
    """The DER certificates an envelope carries."""
    if data[:1] == b"{":
        return [base64.b64decode(c) for c in json.loads(data)["header"]["x5c"]]
    return list(cbor2.loads(data).value[1][33])


def leaf_pem(data: bytes) -> str:
    """The envelope's own (self-signed) signing certificate, to use as a trust store."""
    cert = x509.load_der_x509_certificate(chain_of(data)[0])
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def media_type_of(data: bytes) -> str:
    return JWS if data[:1] == b"{" else COSE


def notation(
    certificates: str,
    *,
    store: str = "ca",
    level: str = "strict",
    identities: tuple[str, ...] = ("*",),
) -> NotationAuthority:
    return NotationAuthority(
        trust_store_type=store,  # type: ignore[arg-type]
        certificates=certificates,
        trusted_identities=identities,
        level=level,  # type: ignore[arg-type]
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- 1. raw envelopes, table-driven ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    envelope: str  # path under fixtures/notation, or "conformance-cose"
    store: str  # trust store: a path, or "leaf" for the envelope's own certificate
    descriptor: Mapping[str, Any]
    ok: bool
    reason: str = ""  # the whole reason (failure) ...
    contains: str = ""  # ... or a part of it
    warnings: tuple[str, ...] = ()
    level: str = "strict"
    store_type: str = "ca"
    now: datetime = field(default_factory=lambda: NOW)
    subject: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    media_type: str = ""  # "" = from the first byte


TEST_ROOT = f"{TRUST}/NotationTestRoot.pem"
ROOT_SUBJECT = "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
MOCK_EXPIRED = 'digital signature has expired on "Fri, 29 Jul 2022 23:59:00 +0000"'
BAD_B64 = "the JWS payload is not unpadded base64url"
TSA_EXPIRED = (  # notation-go's own expectation without a TSA trust store (timestamp_test.go)
    'verification time is after certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,C=US" '
    'validity period, it was expired at "Tue, 18 Jun 2024 07:30:31 +0000"'
)
MOCK_PLUGIN = (
    "the signature needs verification plugin 'io.cncf.notary.plugin.unittest.mock', "
    "which pullgate does not run"
)

CASES: dict[str, Case] = {
    # notation-go mock envelopes: PS384, leaf + root "Notation Test Root"
    "ca_valid": Case(
        f"{MOCK}/ca_valid_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=True,
        subject=ROOT_SUBJECT,
        annotations={"signingTime": "2020-11-09T07:00:00Z"},
    ),
    "ca_valid-audit": Case(
        f"{MOCK}/ca_valid_sig_env.json", TEST_ROOT, MOCK_DESC, ok=True, level="audit"
    ),
    "ca_valid-signingAuthority-store": Case(
        f"{MOCK}/ca_valid_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        store_type="signingAuthority",
        reason="the signature uses signing scheme notary.x509, which needs a trust store of "
        "type ca, and this authority's is of type signingAuthority",
    ),
    "ca_invalid": Case(
        f"{MOCK}/ca_invalid_sig_env.json", TEST_ROOT, MOCK_DESC, ok=False, reason=BAD_B64
    ),
    "ca_invalid-audit": Case(
        f"{MOCK}/ca_invalid_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        level="audit",
        reason=BAD_B64,
    ),
    "ca_expired-strict": Case(
        f"{MOCK}/ca_expired_sig_env.json", TEST_ROOT, MOCK_DESC, ok=False, reason=MOCK_EXPIRED
    ),
    "ca_expired-permissive": Case(
        f"{MOCK}/ca_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=True,
        level="permissive",
        warnings=(logged("expiry", MOCK_EXPIRED),),
    ),
    "ca_expired-strict-before-expiry": Case(
        f"{MOCK}/ca_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=True,
        now=at("2022-07-29T12:00:00"),
    ),
    # sa_valid_sig_env.json is not in the shared fixtures: sa_expired before its expiry is the
    # valid signingAuthority envelope.
    "sa_expired-strict-before-expiry": Case(
        f"{MOCK}/sa_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=True,
        store_type="signingAuthority",
        now=at("2022-07-29T12:00:00"),
        subject=ROOT_SUBJECT,
        annotations={"signingTime": "2022-07-29T00:00:00Z"},
    ),
    "sa_expired-strict": Case(
        f"{MOCK}/sa_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        store_type="signingAuthority",
        reason=MOCK_EXPIRED,
    ),
    "sa_expired-permissive": Case(
        f"{MOCK}/sa_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=True,
        level="permissive",
        store_type="signingAuthority",
        warnings=(logged("expiry", MOCK_EXPIRED),),
    ),
    "sa_expired-ca-store": Case(
        f"{MOCK}/sa_expired_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        now=at("2022-07-29T12:00:00"),
        contains="needs a trust store of type signingAuthority",
    ),
    "sa_invalid": Case(
        f"{MOCK}/sa_invalid_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        store_type="signingAuthority",
        reason=BAD_B64,
    ),
    "ca_plugin": Case(
        f"{MOCK}/ca_plugin_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        reason="the signature needs verification plugin 'plugin-name', which pullgate does not run",
    ),
    "ca_plugin-audit": Case(
        f"{MOCK}/ca_plugin_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        level="audit",
        contains="needs verification plugin 'plugin-name'",
    ),
    "sa_plugin": Case(
        f"{MOCK}/sa_plugin_sig_env.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        store_type="signingAuthority",
        contains="needs verification plugin 'plugin-name'",
    ),
    **{
        f"pluginver-{version}": Case(
            f"{MOCK}/ca_{kind}_pluginver_sig_env_{version}.json",
            f"{TRUST}/wabbit-networks.io.crt",
            PLUGIN_DESC,
            ok=False,
            reason=MOCK_PLUGIN,
        )
        for kind, version in [
            ("compatible", "0.0.9"),
            ("compatible", "1.0.0-alpha.beta"),
            ("compatible", "1.0.0-alpha"),
            ("compatible", "1.0.0"),
            ("incompatible", "1.0.1"),
            ("incompatible", "1.0.9"),
            ("incompatible", "1.1.0-alpha"),
            ("incompatible", "1.2.3"),
        ]
    },
    # user metadata (targetArtifact.annotations), self-signed wabbit-networks cert valid one day
    "metadata-in-validity": Case(
        f"{MOCK}/sig_env_with_metadata.json",
        "leaf",
        METADATA_DESC,
        ok=True,
        now=at("2023-01-11T12:00:00"),
        subject="CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US",
        annotations={
            "io.wabbit-networks.buildId": "123",
            "io.wabbit-networks.buildTime": "1672944615",
            "signingTime": "2023-01-11T18:02:54Z",
        },
    ),
    "metadata-now": Case(
        f"{MOCK}/sig_env_with_metadata.json",
        "leaf",
        METADATA_DESC,
        ok=False,
        reason='verification time is after certificate "CN=wabbit-networks.io,O=Notary,'
        'L=Seattle,ST=WA,C=US" validity period, it was expired at '
        '"Thu, 12 Jan 2023 00:52:12 +0000"',
    ),
    # self-signed CN=alpine, JWS and COSE
    "jws_signature": Case(
        "notation-go/internal/testdata/jws_signature.sig",
        "leaf",
        ALPINE_DESC,
        ok=True,
        subject="CN=alpine,O=Notary,L=Seattle,ST=WA,C=US",
        annotations={"signingTime": "2023-03-14T08:10:02Z"},
    ),
    "cose_signature": Case(
        "notation-go/internal/testdata/cose_signature.sig",
        "leaf",
        ALPINE_DESC,
        ok=True,
        subject="CN=alpine,O=Notary,L=Seattle,ST=WA,C=US",
        annotations={"signingTime": "2023-03-14T04:45:22Z"},
    ),
    # notation-go timestamp envelopes, verified as notation does without a TSA trust store
    "withoutTimestamp": Case(f"{SIGENV}/withoutTimestamp.sig", "leaf", TIMESTAMP_DESC, ok=True),
    "jwsWithTimestamp": Case(f"{SIGENV}/jwsWithTimestamp.sig", "leaf", TIMESTAMP_DESC, ok=True),
    "coseWithTimestamp": Case(f"{SIGENV}/coseWithTimestamp.sig", "leaf", TIMESTAMP_DESC, ok=True),
    "jwsExpiredWithTimestamp": Case(
        f"{SIGENV}/jwsExpiredWithTimestamp.sig",
        "leaf",
        TIMESTAMP_DESC,
        ok=False,
        contains=f"{TSA_EXPIRED} (the envelope's {NOT_NATIVE}",
    ),
    "coseExpiredWithTimestamp": Case(
        f"{SIGENV}/coseExpiredWithTimestamp.sig",
        "leaf",
        TIMESTAMP_DESC,
        ok=False,
        contains=f"{TSA_EXPIRED} (the envelope's {NOT_NATIVE}",
    ),
    "coseExpiredWithTimestamp-permissive": Case(
        f"{SIGENV}/coseExpiredWithTimestamp.sig",
        "leaf",
        TIMESTAMP_DESC,
        ok=True,
        level="permissive",
        contains=TSA_EXPIRED,  # in the warning
    ),
    "coseExpiredWithTimestamp-in-validity": Case(
        f"{SIGENV}/coseExpiredWithTimestamp.sig",
        "leaf",
        TIMESTAMP_DESC,
        ok=True,
        now=at("2024-06-18T07:25:00"),
    ),
    "timestampAfterNotAfter": Case(
        f"{SIGENV}/timestampAfterNotAfter.sig",
        "leaf",
        TIMESTAMP_DESC,
        ok=False,
        contains='it was expired at "Tue, 18 Sep 2001 11:54:34 +0000"',
    ),
    "timestampBeforeNotBefore": Case(
        f"{SIGENV}/timestampBeforeNotBefore.sig",
        f"{TRUST}/TestTimestampNotYetValid.crt",
        TIMESTAMP_DESC,
        ok=False,
        reason='verification time is before certificate "CN=testTSA,O=Notary,L=Seattle,ST=WA,'
        'C=US" validity period, it will be valid from "Fri, 18 Sep 2099 11:54:34 +0000"',
    ),
    # notation's blob signatures (testcert2/3, valid one day, with RFC 3161 timestamps)
    "blob.jws": Case(
        "notation/test/e2e/testdata/signatures/blob.jws.sig",
        "leaf",
        BLOB_DESC,
        ok=False,
        contains='expired at "Wed, 01 Jan 2025 08:04:39 +0000" (the envelope\'s ' + NOT_NATIVE,
    ),
    "blob.jws-in-validity": Case(
        "notation/test/e2e/testdata/signatures/blob.jws.sig",
        "leaf",
        BLOB_DESC,
        ok=True,
        now=at("2024-12-31T12:00:00"),
        subject="CN=testcert2,O=Notary,L=Seattle,ST=WA,C=US",
    ),
    "blob.cose-in-validity": Case(
        "notation/test/e2e/testdata/signatures/blob.cose.sig",
        "leaf",
        BLOB_DESC,
        ok=True,
        now=at("2025-01-07T12:00:00"),
        subject="CN=testcert3,O=Notary,L=Seattle,ST=WA,C=US",
    ),
    "blob.cose-permissive": Case(
        "notation/test/e2e/testdata/signatures/blob.cose.sig",
        "leaf",
        BLOB_DESC,
        ok=True,
        level="permissive",
        contains='expired at "Wed, 08 Jan 2025 08:42:24 +0000"',
    ),
    "malformed.jws": Case(
        "notation/test/e2e/testdata/signatures/malformed.jws.sig",
        TEST_ROOT,
        BLOB_DESC,
        ok=False,
        contains="the JWS envelope is not JSON",
        media_type=JWS,
    ),
    # the e2e layouts' envelopes, raw
    "e2e-valid-envelope": Case(
        f"{LAYOUTS}/e2e-valid-signature/blobs/sha256/"
        "c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50",
        f"{LOCALKEYS}/e2e.crt",
        E2E_DESC,
        ok=True,
        subject="CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
        annotations={"signingTime": "2023-06-27T05:30:33Z"},
    ),
    "e2e-expired-envelope-audit": Case(
        f"{LAYOUTS}/e2e-expired-signature/blobs/sha256/"
        "b5f927564088f65dad86c81bcdd0b55415a8b4c9a0a5391107210e0cdb305cc7",
        f"{LOCALKEYS}/e2e.crt",
        E2E_DESC,
        ok=True,
        level="audit",
        warnings=(logged("expiry", CLI_EXPIRED_SIG),),
    ),
    # notation-core-go conformance vectors carry no certificate chain
    "conformance-jws": Case(
        "notation-core-go/signature/jws/testdata/conformance.json",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        reason="the JWS envelope has no certificate chain (x5c)",
    ),
    "conformance-cose": Case(
        "conformance-cose",
        TEST_ROOT,
        MOCK_DESC,
        ok=False,
        reason="the COSE envelope has no certificate chain (x5chain)",
    ),
}


def envelope_bytes(name: str) -> bytes:
    if name == "conformance-cose":
        doc = json.loads(
            fx("notation-core-go/signature/cose/testdata/conformance.json").read_text()
        )
        return bytes.fromhex(doc["expectedOutput"]["cborHex"])
    return fx(name).read_bytes()


@pytest.mark.parametrize("name", list(CASES))
def test_envelope(name: str) -> None:
    case = CASES[name]
    data = envelope_bytes(case.envelope)
    store = leaf_pem(data) if case.store == "leaf" else pem(case.store)
    spec = notation(store, store=case.store_type, level=case.level)
    media_type = case.media_type or media_type_of(data)
    run = lambda: verify_envelope(  # noqa: E731
        data, media_type, spec, descriptor=case.descriptor, now=case.now
    )
    if not case.ok:
        with pytest.raises(NotationProblem) as failed:
            run()
        if case.reason:
            assert str(failed.value) == case.reason
        assert case.contains in str(failed.value)
        return
    result = run()
    sig = result.signature
    assert sig.kind == "notation"
    if case.warnings:
        assert result.warnings == case.warnings
    if case.contains:
        assert any(case.contains in w for w in result.warnings), result.warnings
    if not case.warnings and not case.contains:
        assert result.warnings == ()
    if case.subject:
        assert sig.subject == case.subject
    if case.annotations:
        assert dict(sig.annotations) == dict(case.annotations)
    leaf = chain_of(data)[0]
    assert sig.key_id == hashlib.sha256(leaf).hexdigest()
    assert sig.signed_at is None
    assert sig.tlog is False


# -- signing here, for what no fixture has ---------------------------------------------------------


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def raw_signature(key: Key, alg: str, data: bytes) -> bytes:
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        return key.sign(data, pss, digest)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def protected_header(
    alg: str = "PS256",
    *,
    scheme: str = "notary.x509",
    signed: datetime | None = None,
    expiry: datetime | None = None,
    extra: Mapping[str, str] | None = None,
    critical: tuple[str, ...] = (),
) -> dict[str, Any]:
    when = (signed or NOW - timedelta(minutes=5)).replace(microsecond=0)
    time_header = (
        "io.cncf.notary.signingTime"
        if scheme == "notary.x509"
        else "io.cncf.notary.authenticSigningTime"
    )
    crit = ["io.cncf.notary.signingScheme"]
    if scheme != "notary.x509":
        crit.append(time_header)
    header: dict[str, Any] = {
        "alg": alg,
        "cty": PAYLOAD_TYPE,
        "io.cncf.notary.signingScheme": scheme,
        time_header: when.isoformat().replace("+00:00", "Z"),
    }
    if expiry is not None:
        header["io.cncf.notary.expiry"] = expiry.isoformat().replace("+00:00", "Z")
        crit.append("io.cncf.notary.expiry")
    header.update(extra or {})
    header["crit"] = crit + list(critical)
    return header


def sign_jws(
    key: Key,
    chain: list[x509.Certificate],
    descriptor: Mapping[str, Any],
    *,
    alg: str = "PS256",
    header: dict[str, Any] | None = None,
) -> bytes:
    protected = b64u(json.dumps(header or protected_header(alg)).encode())
    payload = b64u(json.dumps({"targetArtifact": dict(descriptor)}).encode())
    signature = raw_signature(key, alg, f"{protected}.{payload}".encode())
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    envelope = {
        "payload": payload,
        "protected": protected,
        "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "pullgate-tests"},
        "signature": b64u(signature),
    }
    return json.dumps(envelope).encode()


def sign_cose(
    key: Key, chain: list[x509.Certificate], descriptor: Mapping[str, Any], alg: str
) -> bytes:
    label = {"PS256": -37, "PS384": -38, "ES256": -7, "ES384": -35}[alg]
    protected = cbor2.dumps(
        {
            1: label,
            2: ["io.cncf.notary.signingScheme"],
            3: PAYLOAD_TYPE,
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": (NOW - timedelta(minutes=5)).replace(microsecond=0),
        },
        datetime_as_timestamp=True,
    )
    payload = json.dumps({"targetArtifact": dict(descriptor)}).encode()
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    unprotected = {33: [c.public_bytes(serialization.Encoding.DER) for c in chain]}
    message = [protected, unprotected, payload, raw_signature(key, alg, to_sign)]
    return cbor2.dumps(cbor2.CBORTag(18, message))


def self_signed(
    key: Key,
    common_name: str,
    *,
    name: x509.Name | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    subject = name or x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    digest = hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, digest)
    )


def to_pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


@pytest.fixture(scope="module")
def e2e_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(fx(f"{LOCALKEYS}/e2e.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def e2e_cert() -> x509.Certificate:
    return x509.load_pem_x509_certificate(fx(f"{LOCALKEYS}/e2e.crt").read_bytes())


def test_signer_here_matches_notation(e2e_key, e2e_cert) -> None:
    """The signer in this file makes envelopes the verifier accepts, as it does notation's."""
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC)
    result = verify_envelope(
        data, JWS, notation(pem(f"{LOCALKEYS}/e2e.crt")), descriptor=E2E_DESC, now=NOW
    )
    assert result.signature.subject == "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"
    assert result.warnings == ()


# -- 3. tampering, replay, trust and identity ------------------------------------------------------


def e2e_valid_envelope() -> bytes:
    return fx(
        f"{LAYOUTS}/e2e-valid-signature/blobs/sha256/"
        "c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50"
    ).read_bytes()


def e2e_spec(**kw: Any) -> NotationAuthority:
    return notation(pem(f"{LOCALKEYS}/e2e.crt"), **kw)


def test_flipped_signature_byte_fails_integrity() -> None:
    doc = json.loads(e2e_valid_envelope())
    signature = bytearray(base64.urlsafe_b64decode(doc["signature"] + "=="))
    signature[10] ^= 0x01
    doc["signature"] = b64u(bytes(signature))
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(
            json.dumps(doc).encode(), JWS, e2e_spec(level="audit"), descriptor=E2E_DESC, now=NOW
        )
    assert str(failed.value) == (
        "the JWS signature does not verify with the signing certificate's key "
        "(the envelope was altered or not signed by that key)"
    )


def test_flipped_cose_signature_byte_fails_integrity() -> None:
    data = fx("notation-go/internal/testdata/cose_signature.sig").read_bytes()
    protected, unprotected, payload, signature = cbor2.loads(data).value
    flipped = bytearray(signature)
    flipped[-1] ^= 0x80
    message = [protected, dict(unprotected), payload, bytes(flipped)]
    tampered = cbor2.dumps(cbor2.CBORTag(18, message))
    with pytest.raises(NotationProblem, match="the COSE signature does not verify"):
        verify_envelope(tampered, COSE, notation(leaf_pem(data)), descriptor=ALPINE_DESC, now=NOW)


def test_edited_payload_fails_integrity() -> None:
    doc = json.loads(e2e_valid_envelope())
    payload = json.loads(base64.urlsafe_b64decode(doc["payload"] + "=="))
    payload["targetArtifact"]["digest"] = "sha256:" + "0" * 64
    doc["payload"] = b64u(json.dumps(payload).encode())
    other = {**E2E_DESC, "digest": "sha256:" + "0" * 64}
    with pytest.raises(NotationProblem, match="the JWS signature does not verify"):
        verify_envelope(json.dumps(doc).encode(), JWS, e2e_spec(), descriptor=other, now=NOW)


def test_padding_or_foreign_characters_in_base64url_fail() -> None:
    doc = json.loads(e2e_valid_envelope())
    for field_name, bad in (("signature", doc["signature"] + "="), ("protected", "+/" * 8)):
        changed = {**doc, field_name: bad}
        with pytest.raises(NotationProblem, match="not unpadded base64url"):
            verify_envelope(
                json.dumps(changed).encode(), JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW
            )


def test_replayed_on_another_image() -> None:
    other = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "ab" * 32, "size": 1234}
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(e2e_valid_envelope(), JWS, e2e_spec(), descriptor=other, now=NOW)
    assert str(failed.value) == (
        f"the signature is for {E2E_IMAGE} (size 517), not for this image "
        f"sha256:{'ab' * 32} (size 1234)"
    )


def test_replay_is_refused_at_every_level() -> None:
    other = {**E2E_DESC, "mediaType": DOCKER_MANIFEST}
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(
            e2e_valid_envelope(), JWS, e2e_spec(level="audit"), descriptor=other, now=NOW
        )
    assert str(failed.value) == (
        f"the signature is for {E2E_IMAGE} (size 517, {OCI_MANIFEST}), not for this image "
        f"{E2E_IMAGE} (size 517, {DOCKER_MANIFEST})"
    )


def test_retargeted_payload_signed_by_the_trusted_key(e2e_key, e2e_cert) -> None:
    """A genuine signature by the trusted signer, for another image, is not for this one."""
    other = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "cd" * 32, "size": 99}
    data = sign_jws(e2e_key, [e2e_cert], other)
    assert verify_envelope(data, JWS, e2e_spec(), descriptor=other, now=NOW)
    with pytest.raises(NotationProblem, match=r"^the signature is for sha256:cdcd"):
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)


def test_another_root_in_the_trust_store() -> None:
    data = fx(f"{MOCK}/ca_valid_sig_env.json").read_bytes()
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, e2e_spec(), descriptor=MOCK_DESC, now=NOW)
    assert str(failed.value) == CLI_UNTRUSTED


def test_same_key_other_certificate_is_not_trusted() -> None:
    """new_e2e.crt holds e2e.crt's key: Notation compares certificates, so it is not trusted
    (the CLI: truststore-wrong-cert fails at strict, passes with a warning at audit)."""
    store = notation(pem(f"{LOCALKEYS}/new_e2e.crt"))
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(e2e_valid_envelope(), JWS, store, descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == CLI_UNTRUSTED
    audit = notation(pem(f"{LOCALKEYS}/new_e2e.crt"), level="audit")
    result = verify_envelope(e2e_valid_envelope(), JWS, audit, descriptor=E2E_DESC, now=NOW)
    assert result.warnings == (logged("authenticity", CLI_UNTRUSTED),)


@pytest.mark.parametrize(
    ("identity", "ok"),
    [
        ("x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US", True),
        ("x509.subject: C=US, ST=WA, O=Notary", True),  # a subset of the leaf's RDNs
        ("x509.subject: c=US,st=WA,o=Notary", True),  # attribute types are case-insensitive
        ("x509.subject: C=US, ST=WA, O=Other", False),
        ("x509.subject: C=US, ST=WA, O=Notary, OU=Builds", False),  # the leaf has no OU
    ],
)
def test_trusted_identities(identity: str, ok: bool) -> None:
    spec = e2e_spec(identities=(identity,))
    if ok:
        verify_envelope(e2e_valid_envelope(), JWS, spec, descriptor=E2E_DESC, now=NOW)
        return
    with pytest.raises(NotationProblem, match=r"does not match the X\.509 trusted identities"):
        verify_envelope(e2e_valid_envelope(), JWS, spec, descriptor=E2E_DESC, now=NOW)


def test_identity_mismatch_reason_as_the_cli_prints_it() -> None:
    spec = e2e_spec(identities=("x509.subject: CN=someone-else,O=Other Org,L=Seattle,ST=WA,C=US",))
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(e2e_valid_envelope(), JWS, spec, descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == (
        'signing certificate "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US" from the digital signature '
        f"{CLI_IDENTITY} of this authority"
    )
    audit = e2e_spec(level="audit", identities=spec.trusted_identities)
    result = verify_envelope(e2e_valid_envelope(), JWS, audit, descriptor=E2E_DESC, now=NOW)
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith('authenticity was set to "log" and failed with error: ')


def test_escaped_identity_matches() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "builder")  # O=Acme, Inc.
    data = sign_jws(key, [cert], E2E_DESC, alg="ES256", header=protected_header("ES256"))
    spec = notation(to_pem(cert), identities=(r"x509.subject: C=US, ST=WA, O=Acme\, Inc.",))
    assert verify_envelope(data, JWS, spec, descriptor=E2E_DESC, now=NOW).signature.subject == (
        r"CN=builder,O=Acme\, Inc.,ST=WA,C=US"
    )
    quoted = notation(to_pem(cert), identities=('x509.subject: C=US, ST=WA, O="Acme, Inc."',))
    verify_envelope(data, JWS, quoted, descriptor=E2E_DESC, now=NOW)


def test_levels_on_an_expired_signature() -> None:
    data = fx(f"{MOCK}/ca_expired_sig_env.json").read_bytes()
    root = pem(TEST_ROOT)
    with pytest.raises(NotationProblem, match="digital signature has expired"):
        verify_envelope(data, JWS, notation(root), descriptor=MOCK_DESC, now=NOW)
    for level in ("permissive", "audit"):
        result = verify_envelope(
            data, JWS, notation(root, level=level), descriptor=MOCK_DESC, now=NOW
        )
        assert result.warnings == (logged("expiry", MOCK_EXPIRED),)


def test_audit_logs_everything_but_integrity() -> None:
    """Audit: an untrusted signer, a mismatching identity and an expired signature are all only
    logged; the envelope must still be intact and for this image."""
    data = fx(f"{MOCK}/ca_expired_sig_env.json").read_bytes()
    spec = e2e_spec(level="audit", identities=("x509.subject: C=US, ST=WA, O=Other",))
    result = verify_envelope(data, JWS, spec, descriptor=MOCK_DESC, now=NOW)
    assert [w.split(" was set")[0] for w in result.warnings] == [
        "authenticity",
        "authenticity",
        "expiry",
    ]
    assert result.warnings[0] == logged("authenticity", CLI_UNTRUSTED)


def test_skip_never_verifies() -> None:
    spec = e2e_spec(level="skip")
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(e2e_valid_envelope(), JWS, spec, descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == (
        "level skip: Notation checks nothing, so this authority never verifies"
    )


def test_unknown_critical_header_fails(e2e_key, e2e_cert) -> None:
    header = protected_header(extra={"com.example.gate": "on"}, critical=("com.example.gate",))
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, e2e_spec(level="audit"), descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == (
        "the signature has critical header 'com.example.gate', which Notation does not define "
        "and pullgate does not understand"
    )
    # the same header, not critical, is an ordinary extended attribute
    header = protected_header(extra={"com.example.gate": "on"})
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)


def test_critical_header_that_is_absent_fails(e2e_key, e2e_cert) -> None:
    header = protected_header(critical=("io.cncf.notary.expiry",))
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    with pytest.raises(NotationProblem, match="marked critical but not present"):
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)


def test_expiry_not_marked_critical_fails(e2e_key, e2e_cert) -> None:
    header = protected_header(expiry=NOW + timedelta(days=1))
    header["crit"] = ["io.cncf.notary.signingScheme"]
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == "header io.cncf.notary.expiry is not marked critical"


def test_algorithm_must_follow_the_key(e2e_key, e2e_cert) -> None:
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, alg="PS384", header=protected_header("PS384"))
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == (
        "the signature algorithm PS384 is not the one the signing key dictates (PS256)"
    )


def test_wrong_content_type_fails(e2e_key, e2e_cert) -> None:
    header = {**protected_header(), "cty": "application/json"}
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    with pytest.raises(NotationProblem, match="payload content type 'application/json'"):
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)


@pytest.mark.parametrize(("curve", "alg"), [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384")])
def test_ecdsa_jws_and_cose(curve: ec.EllipticCurve, alg: str) -> None:
    key = ec.generate_private_key(curve)
    cert = self_signed(key, f"ecdsa-{alg}")
    spec = notation(to_pem(cert))
    jws = sign_jws(key, [cert], E2E_DESC, alg=alg, header=protected_header(alg))
    cose = sign_cose(key, [cert], E2E_DESC, alg)
    for data, media_type in ((jws, JWS), (cose, COSE)):
        result = verify_envelope(data, media_type, spec, descriptor=E2E_DESC, now=NOW)
        assert result.signature.subject == f"CN=ecdsa-{alg},O=Acme\\, Inc.,ST=WA,C=US"


def test_signing_authority_scheme(e2e_key, e2e_cert) -> None:
    signed = NOW - timedelta(hours=1)
    header = protected_header(scheme="notary.x509.signingAuthority", signed=signed)
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=header)
    sa = notation(pem(f"{LOCALKEYS}/e2e.crt"), store="signingAuthority")
    result = verify_envelope(data, JWS, sa, descriptor=E2E_DESC, now=NOW)
    assert result.signature.annotations["signingTime"] == (
        signed.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )
    with pytest.raises(NotationProblem, match="needs a trust store of type signingAuthority"):
        verify_envelope(data, JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)
    # authentic signing time outside the certificate's validity
    early = protected_header(scheme="notary.x509.signingAuthority", signed=at("2020-01-01T00:00"))
    data = sign_jws(e2e_key, [e2e_cert], E2E_DESC, header=early)
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, sa, descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == (
        'certificate "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US" was not valid when the digital '
        'signature was produced at "Wed, 01 Jan 2020 00:00:00 +0000"'
    )


def crl_chain() -> tuple[rsa.RSAPrivateKey, list[x509.Certificate]]:
    """notation's CRL test chain (leaf, intermediate, root) and the leaf's key."""
    base = "notation/test/e2e/testdata/config/crl"
    key = serialization.load_pem_private_key(fx(f"{base}/leaf.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    chain = x509.load_pem_x509_certificates(fx(f"{base}/certchain_with_crl.pem").read_bytes())
    return key, chain


def test_revocation_cannot_be_checked_natively() -> None:
    key, chain = crl_chain()
    data = sign_jws(key, chain, E2E_DESC)
    root = pem("notation/test/e2e/testdata/config/crl/root.crt")
    reason = (
        'revocation of "CN=LeafCert,OU=OrgUnit,O=Organization,L=City,ST=State,C=US" cannot be '
        "checked natively (CRL/OCSP): the certificate names a CRL distribution point"
    )
    with pytest.raises(NotationProblem) as failed:
        verify_envelope(data, JWS, notation(root), descriptor=E2E_DESC, now=NOW)
    assert str(failed.value) == reason
    for level in ("permissive", "audit"):
        result = verify_envelope(
            data, JWS, notation(root, level=level), descriptor=E2E_DESC, now=NOW
        )
        assert result.warnings == (logged("revocation", reason),)
        assert result.signature.issuer == (
            "CN=IntermediateCA,OU=OrgUnit,O=Organization,L=City,ST=State,C=US"
        )


def test_chain_order_and_completeness_are_checked() -> None:
    key, chain = crl_chain()
    root = pem("notation/test/e2e/testdata/config/crl/root.crt")
    cases = {
        "no root": (chain[:2], 'root certificate "CN=IntermediateCA,'),
        "out of order": ([chain[0], chain[2], chain[1]], "is not issued by"),
        "leaf only": (chain[:1], "is not self-signed"),
    }
    for name, (certs, expected) in cases.items():
        data = sign_jws(key, certs, E2E_DESC)
        with pytest.raises(NotationProblem, match=expected):
            verify_envelope(data, JWS, notation(root), descriptor=E2E_DESC, now=NOW)
        del name


def test_a_non_ca_leaf_cannot_be_a_trust_store() -> None:
    _, chain = crl_chain()
    with pytest.raises(NotationProblem, match="is not a CA certificate or self-signed"):
        verify_envelope(
            e2e_valid_envelope(), JWS, notation(to_pem(chain[0])), descriptor=E2E_DESC, now=NOW
        )


def test_unknown_envelope_media_type() -> None:
    with pytest.raises(NotationProblem, match="is not a Notation envelope"):
        verify_envelope(b"{}", "application/json", e2e_spec(), descriptor=E2E_DESC, now=NOW)


def test_duplicate_protected_header_fails(e2e_key, e2e_cert) -> None:
    data = json.loads(sign_jws(e2e_key, [e2e_cert], E2E_DESC))
    raw = base64.urlsafe_b64decode(data["protected"] + "==").decode()
    doubled = raw[:-1] + ',"io.cncf.notary.signingScheme":"notary.x509"}'
    data["protected"] = b64u(doubled.encode())
    with pytest.raises(NotationProblem, match="protected header is not JSON: duplicate key"):
        verify_envelope(json.dumps(data).encode(), JWS, e2e_spec(), descriptor=E2E_DESC, now=NOW)


def test_cose_unknown_critical_label_fails() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "cose")
    protected = cbor2.dumps(
        {
            1: -7,
            2: ["io.cncf.notary.signingScheme", 42],
            3: PAYLOAD_TYPE,
            42: "something",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": NOW.replace(microsecond=0),
        },
        datetime_as_timestamp=True,
    )
    payload = json.dumps({"targetArtifact": E2E_DESC}).encode()
    signature = raw_signature(key, "ES256", cbor2.dumps(["Signature1", protected, b"", payload]))
    der = cert.public_bytes(serialization.Encoding.DER)
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {33: [der]}, payload, signature]))
    with pytest.raises(NotationProblem, match="critical header '42'"):
        verify_envelope(data, COSE, notation(to_pem(cert)), descriptor=E2E_DESC, now=NOW)


# -- 2. the e2e layouts, in the real registry ------------------------------------------------------


def layout(name: str) -> Path:
    path = fx(f"{LAYOUTS}/{name}")
    assert path.is_dir(), f"layout {name} is not in the shared fixtures"
    return path


@pytest.fixture(scope="module")
def client(registry: Registry) -> RegistryClient:
    return RegistryClient(Urllib3Transport(), insecure=[registry.host], timeout=5, retries=0)


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> Callable[..., str]:
    """push(layout names..., reverse=False) → the repository they were uploaded into."""
    done: dict[tuple[tuple[str, ...], bool], str] = {}

    def push(*names: str, reverse: bool = False) -> str:
        key = (names, reverse)
        if key not in done:
            repo = f"notation/{names[0]}-{uuid.uuid4().hex[:6]}"
            push_layouts(registry, repo, [layout(n) for n in names], reverse=reverse)
            done[key] = repo
        return done[key]

    return push


def target(registry: Registry, repo: str, digest: str = E2E_IMAGE, **kw: Any) -> Target:
    ref = parse_reference(f"{registry.host}/{repo}@{digest}")
    return Target(ref=ref, digest=digest, **kw)


def authority(spec: NotationAuthority | KeyAuthority) -> Authority:
    return Authority("notary", spec, MARK)


def check(
    client: RegistryClient,
    registry: Registry,
    repo: str,
    spec: NotationAuthority,
    *,
    now: datetime | None = None,
    max_signatures: int = 8,
    **target_kw: Any,
) -> Evidence:
    verifier = NotationNativeVerifier(
        client, max_signatures=max_signatures, clock=(lambda: now) if now else (lambda: NOW)
    )
    return verifier.verify(authority(spec), target(registry, repo, **target_kw))


def e2e_store(**kw: Any) -> NotationAuthority:
    return notation(pem(f"{LOCALKEYS}/e2e.crt"), **kw)


def test_layout_valid(registry, client, pushed) -> None:
    repo = pushed("e2e-valid-signature")
    for level in ("strict", "permissive"):
        ev = check(client, registry, repo, e2e_store(level=level))
        assert ev.verified, ev.error
        assert ev.warnings == ()
        (sig,) = ev.signatures
        assert sig.subject == "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"
        assert sig.issuer == sig.subject
        # the key id is the thumbprint notation put in the signature manifest's annotations
        assert sig.key_id == "e38aea13f2b051f7183cca64a51ee676f4d4456f41d9fecf15eb367efc7343b9"
        assert sig.annotations == {"signingTime": "2023-06-27T05:30:33Z"}
    # the image's descriptor given by the caller, or read from the registry: the same verdict
    ev = check(client, registry, repo, e2e_store(), media_type=OCI_MANIFEST, size=517)
    assert ev.verified, ev.error


def test_layout_expired_signature(registry, client, pushed) -> None:
    repo = pushed("e2e-expired-signature")
    ev = check(client, registry, repo, e2e_store())
    assert not ev.verified
    assert ev.error == f"{CLI_EXPIRED_SIG} (signature sha256:3829708badae…)"
    for level in ("permissive", "audit"):  # the CLI: expired-sig-permissive, -audit
        ev = check(client, registry, repo, e2e_store(level=level))
        assert ev.verified, ev.error
        assert ev.warnings == (logged("expiry", CLI_EXPIRED_SIG),)
    # before the expiry, strict passes
    ev = check(client, registry, repo, e2e_store(), now=at("2023-06-27T05:21:00"))
    assert ev.verified, ev.error


def test_layout_invalid_signature(registry, client, pushed) -> None:
    repo = pushed("e2e-invalid-signature")
    for level in ("strict", "audit"):  # the CLI: invalid-sig-strict, -audit
        ev = check(client, registry, repo, e2e_store(level=level))
        assert not ev.verified
        assert ev.error == (
            "the signature manifest's layer is 'application/vnd.oci.image.layer.v1.tar', not a "
            "Notation envelope (application/jose+json or application/cose) "
            "(signature sha256:321fcc674d67…)"
        )


def test_layout_unsigned(registry, client, pushed) -> None:
    repo = pushed("e2e")
    for level in ("strict", "permissive"):
        ev = check(client, registry, repo, e2e_store(level=level))
        assert not ev.verified
        assert ev.error == (
            f"no Notation signature is associated with {registry.host}/{repo}@{E2E_IMAGE}"
        )


def test_layout_wrong_trust_store(registry, client, pushed) -> None:
    """new_e2e.crt carries the same key as e2e.crt: the CLI's truststore-wrong-cert."""
    repo = pushed("e2e-valid-signature")
    store = pem(f"{LOCALKEYS}/new_e2e.crt")
    for level in ("strict", "permissive"):
        ev = check(client, registry, repo, notation(store, level=level))
        assert not ev.verified
        assert ev.error == f"{CLI_UNTRUSTED} (signature sha256:90ceaff260d6…)"
    ev = check(client, registry, repo, notation(store, level="audit"))
    assert ev.verified, ev.error
    assert ev.warnings == (logged("authenticity", CLI_UNTRUSTED),)


def test_layout_identity(registry, client, pushed) -> None:
    repo = pushed("e2e-valid-signature")
    other = ("x509.subject: CN=someone-else,O=Other Org,L=Seattle,ST=WA,C=US",)
    ev = check(client, registry, repo, e2e_store(identities=other))
    assert not ev.verified
    assert CLI_IDENTITY in ev.error
    same = ("x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",)
    assert check(client, registry, repo, e2e_store(identities=same)).verified


@pytest.mark.parametrize("reverse", [False, True], ids=["valid-first", "expired-first"])
def test_layout_multiple_signatures(registry, client, pushed, reverse: bool) -> None:
    """Two signatures of the image (the valid and the expired e2e layouts, in one repository,
    in both orders): strict passes on the valid one, whichever comes first."""
    repo = pushed("e2e-valid-signature", "e2e-expired-signature", reverse=reverse)
    ev = check(client, registry, repo, e2e_store())
    assert ev.verified, ev.error
    assert ev.warnings == ()
    assert ev.signatures[0].annotations["signingTime"] == "2023-06-27T05:30:33Z"
    ev = check(client, registry, repo, e2e_store(), max_signatures=1)
    if reverse:  # the CLI: multi-sig-invalid-first-max1
        assert not ev.verified
        assert ev.error == (
            "the image has 2 Notation signatures, more than limits.signaturesPerImage (1): only "
            "the first 1 were examined and 1 were not; raise limits.signaturesPerImage if a "
            "valid one may be among them; none of the 1 examined verified: "
            f"{CLI_EXPIRED_SIG} (signature sha256:3829708badae…)"
        )
    else:
        assert ev.verified


def test_expired_certificate(registry, client) -> None:
    """e2e-with-expired-cert, re-signed here: a fresh key in a certificate named and dated as
    expired_e2e.crt (its RDNs stored O, ST, C), which gives the CLI's very reason and warning."""
    expired = x509.load_pem_x509_certificate(fx(f"{LOCALKEYS}/expired_e2e.crt").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(
        key,
        "unused",
        name=expired.subject,
        not_before=expired.not_valid_before_utc,
        not_after=expired.not_valid_after_utc,
    )
    header = protected_header(signed=at("2023-06-27T06:07:26"))
    data = sign_jws(key, [cert], E2E_DESC, header=header)
    repo = f"notation/expired-cert-{uuid.uuid4().hex[:6]}"
    push_signature(registry, repo, data, JWS)
    ev = check(client, registry, repo, notation(to_pem(cert)))
    assert not ev.verified
    assert ev.error.startswith(CLI_EXPIRED_CERT + " (signature sha256:")
    ev = check(client, registry, repo, notation(to_pem(cert), level="permissive"))
    assert ev.verified, ev.error
    assert ev.warnings == (logged("authenticTimestamp", CLI_EXPIRED_CERT),)
    # while the certificate was valid, strict passes
    ev = check(client, registry, repo, notation(to_pem(cert)), now=at("2023-06-26T12:00:00"))
    assert ev.verified, ev.error
    assert ev.signatures[0].subject == "C=AU,ST=Some-State,O=Internet Widgits Pty Ltd"


def push_signature(registry: Registry, repo: str, envelope: bytes, media_type: str) -> str:
    """Push the e2e image and one signature manifest for it, with its referrers tag."""
    image = layout("e2e")
    for blob in sorted((image / "blobs" / "sha256").iterdir()):
        registry.push_blob(repo, blob.read_bytes())
    manifest = (image / "blobs" / "sha256" / E2E_IMAGE[7:]).read_bytes()
    registry.push_manifest(repo, "v1", manifest)
    config = registry.push_blob(repo, b"{}")
    layer = registry.push_blob(repo, envelope)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": NOTATION_ARTIFACT,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": media_type, "digest": layer, "size": len(envelope)}],
        "subject": E2E_DESC,
    }
    data = json.dumps(doc).encode()
    digest = registry.push_manifest(repo, sha256(data), data)
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(data),
        "artifactType": NOTATION_ARTIFACT,
    }
    registry.push_index(repo, E2E_IMAGE.replace(":", "-"), [entry])
    return digest


def signer_pem(name: str, blob: str) -> str:
    """The timestamped layouts' signer (self-signed testcert7), read from the envelope."""
    return leaf_pem(fx(f"{LAYOUTS}/{name}/blobs/sha256/{blob}").read_bytes())


def test_layout_timestamped(registry, client, pushed) -> None:
    name, image = (
        "e2e-with-timestamped-signature",
        "sha256:53b0191218ae" + ("d9a3c1f7c661736ac40cfc8eb928642348fd843ba3f0483c0c20"),
    )
    repo = pushed(name)
    store = signer_pem(name, "603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee")
    # signed by testcert7, not trusted by the e2e store
    ev = check(client, registry, repo, e2e_store(), digest=image)
    assert ev.error.startswith(CLI_UNTRUSTED)
    # with testcert7 trusted: the signature expired (2025-01-21T12:39:46Z) before its
    # certificate did; strict fails on that, permissive logs it and the lapsed certificate
    ev = check(client, registry, repo, notation(store), digest=image)
    assert not ev.verified
    assert ev.error.startswith('digital signature has expired on "Tue, 21 Jan 2025 12:39:46 +0000"')
    ev = check(client, registry, repo, notation(store, level="permissive"), digest=image)
    assert ev.verified, ev.error
    assert [w.split(" was set")[0] for w in ev.warnings] == ["expiry", "authenticTimestamp"]
    assert NOT_NATIVE in ev.warnings[1]
    # while the certificate was valid, the timestamp is not needed
    ev = check(client, registry, repo, notation(store), digest=image, now=at("2025-01-21T10:00"))
    assert ev.verified, ev.error
    assert ev.signatures[0].annotations == {
        "purpose": "e2e",
        "signingTime": "2025-01-21T09:17:46Z",
    }


def test_layout_invalid_timestamp(registry, client, pushed) -> None:
    """No expiry here: strict fails closed on the lapsed certificate, whose RFC 3161 timestamp
    (a broken one) could not vouch for it natively anyway."""
    name, image = (
        "e2e-with-invalid-timestamped-signature",
        "sha256:f1da8cd70d6d851fa2313c8d" + ("6618f79508cf1e86877edf1c0bfe49a1b0a6467a"),
    )
    repo = pushed(name)
    store = signer_pem(name, "8d2e70ffc2af68b7f2df6f30dfefcb7bcda1db5f9ac2566fc8c6c2248c8d4c5f")
    ev = check(client, registry, repo, notation(store), digest=image)
    assert not ev.verified
    assert ev.error.startswith(
        'verification time is after certificate "CN=testcert7,O=Notary,L=Seattle,ST=WA,C=US" '
        'validity period, it was expired at "Wed, 22 Jan 2025 08:36:26 +0000" '
        f"(the envelope's {NOT_NATIVE}"
    )


def test_cose_signature_in_the_registry(registry, client) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = self_signed(key, "cose-signer")
    repo = f"notation/cose-{uuid.uuid4().hex[:6]}"
    push_signature(registry, repo, sign_cose(key, [cert], E2E_DESC, "ES384"), COSE)
    ev = check(client, registry, repo, notation(to_pem(cert)))
    assert ev.verified, ev.error
    assert ev.signatures[0].subject == "CN=cose-signer,O=Acme\\, Inc.,ST=WA,C=US"


def test_oversized_envelope_is_not_fetched(registry, client, e2e_key, e2e_cert) -> None:
    repo = f"notation/big-{uuid.uuid4().hex[:6]}"
    push_signature(registry, repo, sign_jws(e2e_key, [e2e_cert], E2E_DESC), JWS)
    verifier = NotationNativeVerifier(client, max_envelope_bytes=100)
    ev = verifier.verify(authority(e2e_store()), target(registry, repo))
    assert not ev.verified
    assert "bytes, more than limits.envelopeBytes (100 bytes)" in ev.error


def test_skip_level_never_verifies(registry, client, pushed) -> None:
    repo = pushed("e2e-valid-signature")
    ev = check(client, registry, repo, e2e_store(level="skip"))
    assert not ev.verified
    assert ev.error == "level skip: Notation checks nothing, so this authority never verifies"


def test_registry_errors_are_reasons(registry) -> None:
    port = free_port()  # nothing listens there
    client = RegistryClient(Urllib3Transport(), insecure=[f"127.0.0.1:{port}"], retries=0)
    ref = parse_reference(f"127.0.0.1:{port}/app@{E2E_IMAGE}")
    verifier = NotationNativeVerifier(client)
    ev = verifier.verify(
        authority(e2e_store()),
        Target(ref=ref, digest=E2E_IMAGE, media_type=OCI_MANIFEST, size=517),
    )
    assert not ev.verified
    assert ev.error.startswith(f"cannot list the Notation signatures of 127.0.0.1:{port}/app@")
    # the image itself unknown (its descriptor is read from the registry when not given)
    real = RegistryClient(Urllib3Transport(), insecure=[registry.host], retries=0)
    ev = NotationNativeVerifier(real).verify(
        authority(e2e_store()), target(registry, "notation/nothing-here")
    )
    assert not ev.verified
    assert ev.error.startswith(
        f"cannot read the manifest of {registry.host}/notation/nothing-here@{E2E_IMAGE}: "
    )


def test_other_authority_kinds_and_missing_digest(registry, client) -> None:
    verifier = NotationNativeVerifier(client)
    key = authority(KeyAuthority(public_key="unused"))
    ev = verifier.verify(key, target(registry, "x/y"))
    assert ev.error == "Notation signatures cannot satisfy a key authority"
    ref = parse_reference(f"{registry.host}/x/y:v1")
    ev = verifier.verify(authority(e2e_store()), Target(ref=ref, digest=""))
    assert ev.error == "no digest to verify"


def test_verify_never_raises(registry) -> None:
    class Broken(RegistryClient):
        def referrers(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            raise RuntimeError("boom")

    verifier = NotationNativeVerifier(Broken(Urllib3Transport(), insecure=[registry.host]))
    ev = verifier.verify(
        authority(e2e_store()), target(registry, "x/y", media_type=OCI_MANIFEST, size=517)
    )
    assert ev.error == "Notation verification failed unexpectedly: RuntimeError: boom"
