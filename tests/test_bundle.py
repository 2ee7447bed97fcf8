"""Sigstore bundles: real signed material from sigstore-python and sigstore-conformance, read in
place from ../shared/fixtures, through ``verify_bundle``; and ``BundleVerifier`` against a fake
registry."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import shared_fixtures
from pullgate.evidence import Evidence, Target
from pullgate.policy import Authority, KeyAuthority, KeylessAuthority, Mark
from pullgate.reference import ImageRef
from pullgate.registry import NotFound, TooLarge, Unreachable
from pullgate.trust import TrustRoot, load_root
from pullgate.verifiers.bundle import (
    BUNDLE_MEDIA_TYPES,
    MAX_EVIDENCE_REASON,
    MAX_REASON,
    BundleError,
    BundleVerifier,
    _check_statement,
    is_bundle_media_type,
    verify_bundle,
)

UTC = datetime.UTC
PY_ASSETS = Path("sigstore/sigstore-python/test/assets")
CONFORMANCE = Path("sigstore/sigstore-conformance/test/assets/bundle-verify")
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
A_TXT = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"  # conformance
OTHER = "sha256:" + "ab" * 32


def fixture(relative: Path | str) -> Path:
    return shared_fixtures() / relative


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def staging() -> TrustRoot:
    return load_root(str(fixture("sigstore/trust/staging.trusted_root.json")))


def production() -> TrustRoot:
    return load_root(str(fixture("sigstore/trust/production.trusted_root.json")))


def statement_subject(bundle: Path) -> str:
    """The first subject digest of a DSSE bundle's in-toto statement: what it signs."""
    envelope = json.loads(bundle.read_bytes())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return "sha256:" + str(statement["subject"][0]["digest"]["sha256"])


def one_line(reason: str) -> None:
    assert reason and "\n" not in reason and len(reason) <= MAX_REASON, reason


# --- sigstore-python's staging signatures --------------------------------------------------------


@dataclass(frozen=True)
class PyCase:
    bundle: str
    artifact: str  # "" for DSSE: the digest is the statement's subject
    subject: str
    issuer: str
    signed_at: datetime.datetime | None  # None: must fail on staging
    reason: str = ""  # a fragment of the failure reason (on staging)
    own_root: str = ""  # a trust config of its own, in the fixture dir


def _at(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


PY_CASES = [
    PyCase(
        "bundle.txt.sigstore", "bundle.txt", "a@tny.town", GITHUB_OAUTH, _at(2023, 4, 26, 0, 21, 9)
    ),
    PyCase(
        "bundle_v3.txt.sigstore",
        "bundle_v3.txt",
        "william@yossarian.net",
        GITHUB_OAUTH,
        _at(2024, 4, 2, 19, 19, 9),
    ),
    PyCase(
        "bundle_v3_alt.txt.sigstore",
        "bundle_v3_alt.txt",
        "william@yossarian.net",
        GITHUB_OAUTH,
        _at(2024, 4, 2, 19, 20, 16),
    ),
    # Matches the `bundle_v3*.txt` glob of fixtures/README.md, but it is sigstore-python's own
    # negative case (test_bundle_missing_signed_time): an integratedTime without a SET and no
    # TSA timestamp, so nothing vouches for the signing time.
    PyCase(
        "bundle_v3_no_signed_time.txt.sigstore.json",
        "bundle_v3_no_signed_time.txt",
        "",
        "",
        None,
        reason="not a usable Sigstore bundle: bundle must contain an inclusion promise or "
        "signed timestamp(s)",
    ),
    PyCase(
        "tsa/bundle.txt.sigstore",
        "tsa/bundle.txt",
        "alexis.challande@trailofbits.com",
        "https://accounts.google.com",
        _at(2024, 10, 31, 10, 23, 39),  # the Rekor v1 integrated time (preferred over the TSA)
        own_root="tsa/trust_config.json",
    ),
    PyCase(
        "staging-rekor-v2.txt.sigstore.json",
        "staging-rekor-v2.txt",
        "jku@goto.fi",
        GITHUB_OAUTH,
        _at(2025, 6, 9, 11, 57, 38),  # Rekor v2 has no integrated time: the TSA's
    ),
    PyCase(
        "a.dsse.staging-rekor-v2.txt.sigstore.json",
        "",
        BEACON,
        GITHUB_ACTIONS,
        _at(2026, 5, 13, 19, 23, 33),
    ),
    # Not in the README's list: the log entry is another signature's (CVE-2022-36056).
    PyCase(
        "bundle_cve_2022_36056.txt.sigstore",
        "bundle_cve_2022_36056.txt",
        "",
        "",
        None,
        reason="bundle does not verify against the trusted root {staging}: transparency log "
        "entry is inconsistent with other materials",
    ),
]


def py_digest(case: PyCase) -> str:
    assets = fixture(PY_ASSETS)
    if case.artifact:
        return sha256_of(assets / case.artifact)
    return statement_subject(assets / case.bundle)


def trust_config_root(path: Path, tmp_path: Path) -> TrustRoot:
    """The trusted root inside a ClientTrustConfig, written to tmp_path (never the repo)."""
    out = tmp_path / "trusted_root.json"
    out.write_text(json.dumps(json.loads(path.read_text())["trustedRoot"]))
    return load_root(str(out))


@pytest.mark.parametrize("case", PY_CASES, ids=lambda c: c.bundle)
def test_sigstore_python_bundle_on_staging(case: PyCase) -> None:
    data = (fixture(PY_ASSETS) / case.bundle).read_bytes()
    if case.signed_at is None:
        with pytest.raises(BundleError) as info:
            verify_bundle(data, staging(), digest=py_digest(case), identity=None)
        reason = str(info.value)
        one_line(reason)
        assert case.reason.format(staging=staging().path) in reason
        return
    signature = verify_bundle(data, staging(), digest=py_digest(case), identity=None)
    assert (signature.kind, signature.subject, signature.issuer) == (
        "keyless",
        case.subject,
        case.issuer,
    )
    assert signature.san == (case.subject,)
    assert signature.signed_at == case.signed_at
    assert signature.signed_at is not None and signature.signed_at.tzinfo is not None
    assert signature.tlog is True
    assert signature.key_id == "" and dict(signature.annotations) == {}
    assert signature.extensions["issuer"] == case.issuer


@pytest.mark.parametrize("case", [c for c in PY_CASES if c.own_root], ids=lambda c: c.bundle)
def test_sigstore_python_bundle_with_its_own_trust_config(case: PyCase, tmp_path: Path) -> None:
    assets = fixture(PY_ASSETS)
    root = trust_config_root(assets / case.own_root, tmp_path)
    data = (assets / case.bundle).read_bytes()
    signature = verify_bundle(data, root, digest=py_digest(case), identity=None)
    assert (signature.subject, signature.signed_at) == (case.subject, case.signed_at)


@pytest.mark.parametrize("case", PY_CASES, ids=lambda c: c.bundle)
def test_sigstore_python_bundle_fails_on_production(case: PyCase) -> None:
    data = (fixture(PY_ASSETS) / case.bundle).read_bytes()
    with pytest.raises(BundleError) as info:
        verify_bundle(data, production(), digest=py_digest(case), identity=None)
    reason = str(info.value)
    one_line(reason)
    if case.signed_at is None:
        return  # fails on staging already, for its own reason
    assert reason.startswith(
        f"bundle does not verify against the trusted root {production().path}: "
    )
    # Rekor v1 entries fail on the Fulcio chain; Rekor v2 ones on the TSA no production
    # root knows of.
    assert (
        "failed to build timestamp certificate chain" in reason
        or "not enough sources of verified time" in reason
    )


def test_shipped_root_names_itself() -> None:
    """Roots named by the policy (``staging``) are named so in reasons, not by path."""
    data = (fixture(PY_ASSETS) / "bundle.txt.sigstore").read_bytes()
    with pytest.raises(BundleError) as info:
        verify_bundle(
            data,
            load_root("production"),
            digest=sha256_of(fixture(PY_ASSETS) / "bundle.txt"),
            identity=None,
        )
    assert str(info.value).startswith(
        "bundle does not verify against the production trusted root: failed to build timestamp"
    )


def test_dsse_statement_must_name_the_digest() -> None:
    assets = fixture(PY_ASSETS)
    bundle = assets / "a.dsse.staging-rekor-v2.txt.sigstore.json"
    with pytest.raises(BundleError) as info:
        verify_bundle(bundle.read_bytes(), staging(), digest=OTHER, identity=None)
    assert str(info.value) == (f"statement subject {A_TXT} is not the image digest {OTHER}")


def test_message_signature_must_sign_the_digest() -> None:
    data = (fixture(PY_ASSETS) / "bundle_v3.txt.sigstore").read_bytes()
    signed = sha256_of(fixture(PY_ASSETS) / "bundle_v3.txt")
    with pytest.raises(BundleError) as info:
        verify_bundle(data, staging(), digest=OTHER, identity=None)
    assert str(info.value) == f"the bundle signs {signed}, not the image digest {OTHER}"


# --- sigstore-conformance bundle-verify ----------------------------------------------------------

_KEY_SIGNED = (
    "key-signed bundle: sigstore-python 4.5.1 verifies certificate bundles only (its Bundle "
    "says 'expected certificate in bundle'), and this verifier is keyless-only"
)
XFAIL = {
    "managed-key-happy-path": _KEY_SIGNED,
    "managed-key-and-trusted-root": _KEY_SIGNED,
    "intoto-with-custom-trust-root": (
        "intoto/0.0.2 log entry: sigstore-python 4.5.1 takes an integrated time only from "
        "dsse or hashedrekord 0.0.1 entries"
    ),
    "trust-root-tsa-validity-end-inclusive": (
        "sigstore-python 4.5.1 treats a TSA's validFor.end in the trusted root as exclusive "
        "(gen_time < end); the timestamp is exactly at the end"
    ),
}

_HERE = "bundle does not verify against the trusted root "  # + the case's own root
_PROD = "bundle does not verify against the production trusted root: "
_LOAD = "not a usable Sigstore bundle: "
_KEYED = "the bundle is signed with a public key, not a Fulcio certificate"
_INTOTO = "Integrated time only supported for dsse/hashedrekord 0.0.1 types"

# Every case folder: "" for a happy path, else a fragment of the reason it fails with.
CONFORMANCE_CASES: dict[str, str] = {
    "bundle-empty-certificate-chain_fail": _LOAD + "expected non-empty certificate chain",
    "bundle-from-wrong-instance_fail": _PROD + "failed to build timestamp certificate chain",
    "bundle-invalid-base64-signature_fail": _LOAD
    + "failed to load bundle: Value error, Invalid base64-encoded string",
    "bundle-malformed-json_fail": _LOAD + "not JSON: Unterminated string",
    "bundle-negative-log-index_fail": _LOAD
    + "failed to load bundle: Value error, Value exceeds uint64 domain: -1 at "
    "verificationMaterial.tlogEntries.0.logIndex",
    "bundle-unknown-version_fail": _LOAD + "failed to load bundle: Input should be",
    "bundle-with-root-cert_fail": _LOAD + "entry must contain inclusion proof, with checkpoint",
    "bundle-with-sct-with-extensions": "",
    "checkpoint-bad-keyhint_fail": _PROD + "invalid log entry: checkpoint: Signature not found",
    "checkpoint-wrong-roothash_fail": _PROD
    + "invalid log entry: ('Inclusion proof contains invalid root hash signature",
    "dsse-invalid-sig_fail": _PROD + "DSSE: invalid signature",
    "dsse-mismatch-envelope_fail": _PROD + "log entry payload hash does not match bundle",
    "dsse-mismatch-sig_fail": _PROD + "log entry signatures do not match bundle",
    "happy-path-intoto-in-dsse-v3": "",
    "happy-path-v0.1": "",
    "happy-path-v0.2": "",
    "happy-path-v0.3": "",
    "happy-path-v0.3-new-mediaType": "",
    "inclusion-proof-corrupted-hash_fail": _PROD
    + "invalid log entry: inclusion proof contains invalid root hash",
    "incorrect-public-key_fail": _PROD
    + "invalid log entry: inclusion proof contains invalid root hash",
    "integrated-time-in-future_fail": _PROD
    + "failed to build timestamp certificate chain: validation failed: cert is not valid at "
    "validation time",
    # sigstore-python cannot read intoto entries at all: these fail, though not for the
    # reason their README gives.
    "intoto-expired-certificate_fail": _INTOTO,
    "intoto-log-entry-mismatch_fail": _INTOTO,
    "intoto-missing-inclusion-proof_fail": _LOAD
    + "failed to load bundle: Field required at verificationMaterial.tlogEntries.0.inclusionProof",
    "intoto-set-outside-signing-cert-validity_fail": _INTOTO,
    "intoto-tsa-timestamp-outside-cert-validity_fail": _INTOTO,
    "intoto-with-custom-trust-root": "",
    "invalid-checkpoint-signature_fail": _PROD + "invalid log entry: checkpoint: invalid signature",
    "invalid-ct-key_fail": "failed to verify SCT on signing certificate: SCT verify failed",
    "invalid-inclusion-proof_fail": _LOAD + "entry must contain inclusion proof, with checkpoint",
    "managed-key-and-trusted-root": "",
    "managed-key-happy-path": "",
    "managed-key-no-key_fail": _KEYED,
    "managed-key-wrong-key_fail": _KEYED,
    "message-digest-mismatch_fail": "the bundle signs sha256:a1cfc71271d6e278e57cd332ff957c3f"
    f"7043fdda354c4cbb190a30d56efa01bf, not the image digest {A_TXT}",
    "rekor2-checkpoint-cosigned": "",
    "rekor2-checkpoint-missing-log-signature_fail": "invalid log entry: malformed Note: must "
    "contain at least one signature",
    "rekor2-checkpoint-missing-origin_fail": "invalid log entry: malformed LogCheckpoint",
    "rekor2-checkpoint-missing-root-hash_fail": "invalid log entry: malformed LogCheckpoint",
    "rekor2-checkpoint-missing-size_fail": "invalid log entry: malformed LogCheckpoint",
    "rekor2-checkpoint-multiple-cosigs": "",
    "rekor2-checkpoint-no-matching-signature_fail": "invalid log entry: checkpoint: invalid "
    "signature",
    "rekor2-checkpoint-origin-not-first": "",
    "rekor2-checkpoint-two-sigs-cosigned": "",
    "rekor2-checkpoint-two-sigs-from-origin": "",
    "rekor2-dsse-happy-path": "",
    "rekor2-dsse-invalid-sig_fail": "DSSE: invalid signature",
    "rekor2-dsse-mismatch-envelope_fail": "transparency log entry is inconsistent with other "
    "materials",
    "rekor2-dsse-mismatch-sig_fail": "transparency log entry is inconsistent with other materials",
    "rekor2-happy-path": "",
    "rekor2-no-inclusion-proof_fail": _LOAD
    + "failed to load bundle: Field required at verificationMaterial.tlogEntries.0.inclusionProof",
    "rekor2-no-timestamp_fail": _LOAD
    + "bundle must contain an inclusion promise or signed timestamp(s)",
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail": "not enough sources of verified time",
    "rekor2-timestamp-outside-tsa-cert-validity_fail": "not enough sources of verified time",
    "rekor2-timestamp-payload-mismatch_fail": "not enough sources of verified time",
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": _LOAD + "Invalid Timestamp Response",
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail": "not enough sources of verified "
    "time",
    "rekor2-timestamp-with-embedded-cert": "",
    "rekor2-timestamp-with-expired-cert-chain": "",
    "rekor2-timestamp-with-incorrect-time_fail": "failed to build timestamp certificate chain: "
    "validation failed: cert is not valid at validation time",
    "rekor2-timestamp-without-embedded-cert": "",
    "set-invalid-signature_fail": _PROD + "invalid log entry: SET: invalid inclusion promise",
    "signature-mismatch_fail": _PROD + "Signature is invalid for input",
    # sigstore-python refuses the whole file: a tlog key without validFor.start.
    "trust-root-tlog-missing-validity-start_fail": "sigstore cannot use the trusted root "
    "{case}/trusted_root.json: Field required at tlogs.1.publicKey.validFor.start",
    "trust-root-tlog-validity-end-inclusive": "",
    "trust-root-tsa-validity-end-inclusive": "",
    "wrong-hashedrekord-artifact_fail": _PROD + "transparency log entry is inconsistent",
    "wrong-hashedrekord-cert-and-sig_fail": _PROD + "transparency log entry is inconsistent",
    "wrong-hashedrekord-entry_fail": _PROD + "transparency log entry is inconsistent",
    "wrong-material_fail": f"the bundle signs {A_TXT}, not the image digest sha256:1fa70528334c"
    "d25fb9b4aabc0a81c96a0c8e8ff48b59be6dfbe9897e8e7f5c93",
}


def conformance_params() -> list[Any]:
    params = []
    for name in sorted(CONFORMANCE_CASES):
        marks = []
        if name in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, raises=BundleError, reason=XFAIL[name]))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def test_conformance_table_lists_every_case() -> None:
    folders = {p.name for p in fixture(CONFORMANCE).iterdir() if p.is_dir()}
    assert folders == set(CONFORMANCE_CASES)
    assert {n for n, r in CONFORMANCE_CASES.items() if r} == {
        n for n in folders if n.endswith("_fail")
    }


def conformance_inputs(case: Path) -> tuple[bytes, TrustRoot, str, KeylessAuthority]:
    """The way the conformance README says a client reads a case folder."""
    artifact = case / "artifact" if (case / "artifact").is_file() else case.parent / "a.txt"
    identity = (case / "identity").read_text().strip() if (case / "identity").is_file() else BEACON
    issuer = (
        (case / "issuer").read_text().strip() if (case / "issuer").is_file() else GITHUB_ACTIONS
    )
    own = case / "trusted_root.json"
    # The default is the production instance: the root the sigstore wheel ships, by name.
    root = load_root(str(own)) if own.is_file() else load_root("production")
    spec = KeylessAuthority(
        issuer=issuer, subject=identity, trusted_root=str(own) if own.is_file() else "production"
    )
    return (case / "bundle.sigstore.json").read_bytes(), root, sha256_of(artifact), spec


@pytest.mark.parametrize("name", conformance_params())
def test_conformance_bundle_verify(name: str) -> None:
    case = fixture(CONFORMANCE) / name
    data, root, digest, spec = conformance_inputs(case)
    expected = CONFORMANCE_CASES[name]
    if not expected:
        signature = verify_bundle(data, root, digest=digest, identity=spec)
        assert (signature.subject, signature.issuer) == (spec.subject, spec.issuer)
        assert signature.tlog and signature.signed_at is not None
        return
    with pytest.raises(BundleError) as info:
        verify_bundle(data, root, digest=digest, identity=spec)
    reason = str(info.value)
    one_line(reason)
    assert expected.format(case=case) in reason


def test_conformance_dsse_subject_is_checked() -> None:
    """sigstore-python verifies the envelope, not what it says: a DSSE bundle of a.txt is not
    a signature of another digest."""
    data, root, _, spec = conformance_inputs(fixture(CONFORMANCE) / "happy-path-intoto-in-dsse-v3")
    with pytest.raises(BundleError) as info:
        verify_bundle(data, root, digest=OTHER, identity=spec)
    assert str(info.value) == f"statement subject {A_TXT} is not the image digest {OTHER}"


# --- identity -----------------------------------------------------------------------------------

IDENTITY_CASES = [
    # (bundle, authority fields, reason or "" when it must verify)
    ("bundle.txt.sigstore", {"issuer": GITHUB_OAUTH, "subject": "a@tny.town"}, ""),
    (
        "bundle.txt.sigstore",
        {"issuer": GITHUB_OAUTH, "subject": "b@tny.town"},
        "subject is 'a@tny.town', expected 'b@tny.town'",
    ),
    (
        "bundle.txt.sigstore",
        {"issuer": "https://accounts.google.com", "subject": "a@tny.town"},
        "issuer is 'https://github.com/login/oauth', expected 'https://accounts.google.com'",
    ),
    (
        "bundle_v3.txt.sigstore",
        {"issuer": GITHUB_OAUTH, "subject_regexp": r"^[a-z]+@yossarian\.net$"},
        "",
    ),
    (
        "bundle_v3.txt.sigstore",
        {"issuer": GITHUB_OAUTH, "subject_regexp": r"^[a-z]+@example\.com$"},
        "subject is 'william@yossarian.net', expected 'a match for ^[a-z]+@example\\.com$'",
    ),
    (
        "staging-rekor-v2.txt.sigstore.json",
        {"issuer_regexp": r"^https://github\.com/", "subject": "jku@goto.fi"},
        "",
    ),
    (
        "staging-rekor-v2.txt.sigstore.json",
        {"issuer_regexp": r"^https://accounts\.google\.com$", "subject": "jku@goto.fi"},
        "issuer is 'https://github.com/login/oauth', expected "
        "'a match for ^https://accounts\\.google\\.com$'",
    ),
    (
        "a.dsse.staging-rekor-v2.txt.sigstore.json",
        {
            "issuer": GITHUB_ACTIONS,
            "subject_regexp": r"^https://github\.com/sigstore-conformance/[^/]+/\.github/",
        },
        "",
    ),
    (
        "a.dsse.staging-rekor-v2.txt.sigstore.json",
        {"issuer": GITHUB_ACTIONS, "subject_regexp": r"^https://github\.com/acme/"},
        f"subject is '{BEACON}', expected 'a match for ^https://github\\.com/acme/'",
    ),
    # A substring search, as cosign's --certificate-identity-regexp: anchors are the policy's.
    ("bundle.txt.sigstore", {"issuer": GITHUB_OAUTH, "subject_regexp": r"tny\.town"}, ""),
]


@pytest.mark.parametrize(("bundle", "fields", "reason"), IDENTITY_CASES)
def test_identity(bundle: str, fields: dict[str, str], reason: str) -> None:
    case = next(c for c in PY_CASES if c.bundle == bundle)
    data = (fixture(PY_ASSETS) / bundle).read_bytes()
    spec = KeylessAuthority(trusted_root="staging", **fields)
    if not reason:
        signature = verify_bundle(data, staging(), digest=py_digest(case), identity=spec)
        assert signature.subject == case.subject
        return
    with pytest.raises(BundleError) as info:
        verify_bundle(data, staging(), digest=py_digest(case), identity=spec)
    assert str(info.value) == reason


def _self_signed_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no sct")])
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@tny.town")]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("ctlog", "reason"),
    [
        (
            "required",
            "the certificate carries no SCT, and this authority requires one (ctlog: required)",
        ),
        # sigstore-python fails it anyway, on the chain before it looks for the SCT.
        ("optional", "failed to build timestamp certificate chain"),
    ],
)
def test_certificate_without_sct(ctlog: Literal["required", "optional"], reason: str) -> None:
    doc = json.loads((fixture(PY_ASSETS) / "bundle_v3.txt.sigstore").read_bytes())
    doc["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
        _self_signed_der()
    ).decode()
    spec = KeylessAuthority(issuer=GITHUB_OAUTH, subject="a@tny.town", ctlog=ctlog)
    with pytest.raises(BundleError) as info:
        verify_bundle(
            json.dumps(doc).encode(),
            staging(),
            digest=sha256_of(fixture(PY_ASSETS) / "bundle_v3.txt"),
            identity=spec,
        )
    assert reason in str(info.value)


# --- inputs and statements ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digest", "data", "reason"),
    [
        ("sha512:" + "00" * 64, b"{}", "digest 'sha512:0000"),
        ("sha256:ABC", b"{}", "is not sha256:<64 hex digits>"),
        (OTHER, b"not json", "not a usable Sigstore bundle: not JSON: Expecting value"),
        (OTHER, b"[]", "not a usable Sigstore bundle: failed to load bundle"),
        (OTHER, b'{"mediaType": "x"}', "not a usable Sigstore bundle: failed to load bundle"),
    ],
)
def test_bad_input(digest: str, data: bytes, reason: str) -> None:
    with pytest.raises(BundleError) as info:
        verify_bundle(data, staging(), digest=digest, identity=None)
    one_line(str(info.value))
    assert reason in str(info.value)


HEX = "ab" * 32


def _statement(subjects: Any, kind: str = "https://in-toto.io/Statement/v1") -> bytes:
    return json.dumps({"_type": kind, "subject": subjects, "predicateType": "x"}).encode()


@pytest.mark.parametrize(
    ("payload_type", "payload", "reason"),
    [
        ("application/vnd.in-toto+json", _statement([{"digest": {"sha256": HEX}}]), ""),
        (
            "application/vnd.in-toto+json",
            _statement([{"digest": {"sha256": "cd" * 32}}, {"digest": {"sha256": HEX}}]),
            "",
        ),
        (
            "application/vnd.in-toto+json",
            _statement([{"digest": {"sha256": HEX}}], "https://in-toto.io/Statement/v0.1"),
            "",
        ),
        (
            "application/json",
            _statement([{"digest": {"sha256": HEX}}]),
            "DSSE payload type is 'application/json', expected 'application/vnd.in-toto+json'",
        ),
        ("application/vnd.in-toto+json", b"{", "the DSSE payload is not JSON: "),
        (
            "application/vnd.in-toto+json",
            _statement([{"digest": {"sha256": HEX}}], "https://example.com/Statement"),
            "the DSSE payload is not an in-toto statement: _type is "
            "'https://example.com/Statement', expected 'https://in-toto.io/Statement/v1'",
        ),
        ("application/vnd.in-toto+json", _statement([]), "the in-toto statement has no subject"),
        (
            "application/vnd.in-toto+json",
            _statement([{"digest": {"sha512": HEX}}]),
            "no subject of the in-toto statement has a sha256 digest; expected sha256:" + HEX,
        ),
        (
            "application/vnd.in-toto+json",
            _statement([{"digest": {"sha256": c * 64}} for c in "123"]),
            f"statement subjects sha256:{'1' * 64}, sha256:{'2' * 64} (and 1 more) are not "
            f"the image digest sha256:{HEX}",
        ),
    ],
)
def test_statement(payload_type: str, payload: bytes, reason: str) -> None:
    if not reason:
        _check_statement(payload_type, payload, HEX, "sha256:" + HEX)
        return
    with pytest.raises(BundleError) as info:
        _check_statement(payload_type, payload, HEX, "sha256:" + HEX)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        *((t, True) for t in BUNDLE_MEDIA_TYPES),
        ("application/vnd.dev.sigstore.bundle+json; version=0.3", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.4", False),
        ("application/vnd.cncf.notary.signature", False),
        ("application/vnd.dev.cosign.simplesigning.v1+json", False),
        (None, False),
    ],
)
def test_bundle_media_types(media_type: str | None, expected: bool) -> None:
    assert is_bundle_media_type(media_type) is expected


# --- BundleVerifier with a fake registry ----------------------------------------------------------

REGISTRY, REPOSITORY = "registry.example", "acme/app"
NOTATION = "application/vnd.cncf.notary.signature"
BUNDLE_V03 = BUNDLE_MEDIA_TYPES[0]
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()  # the OCI empty config


@dataclass
class FakeManifest:
    data: bytes
    digest: str
    media_type: str = "application/vnd.oci.image.manifest.v1+json"

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class FakeRegistry:
    referrer_list: list[dict[str, Any]] = field(default_factory=list)
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)  # by method or digest
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _check(self, method: str, key: str) -> None:
        self.calls.append((method, key))
        for k in (method, key):
            if k in self.fail:
                raise self.fail[k]

    def referrers(
        self, registry: str, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        assert (registry, repository) == (REGISTRY, REPOSITORY)
        self._check("referrers", digest)
        return list(self.referrer_list)

    def manifest(
        self, registry: str, repository: str, reference: str, *, accept: Sequence[str] = ()
    ) -> FakeManifest:
        self._check("manifest", reference)
        if reference not in self.manifests:
            raise NotFound(f"manifest {reference} not found")
        return FakeManifest(self.manifests[reference], reference)

    def blob(
        self, registry: str, repository: str, digest: str, *, max_bytes: int | None = None
    ) -> bytes:
        self._check("blob", digest)
        data = self.blobs[digest]
        if max_bytes is not None and len(data) > max_bytes:
            raise TooLarge(f"blob {digest} is over {max_bytes} bytes")
        return data

    def attach(
        self,
        bundle: bytes,
        *,
        artifact_type: str = BUNDLE_V03,
        layer_type: str = BUNDLE_V03,
        size: int | None = None,
    ) -> str:
        """Attach a referrer whose one layer is ``bundle``; its manifest digest."""
        blob_digest = "sha256:" + hashlib.sha256(bundle).hexdigest()
        self.blobs[blob_digest] = bundle
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": artifact_type,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": EMPTY_DIGEST,
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": layer_type,
                        "digest": blob_digest,
                        "size": len(bundle) if size is None else size,
                    }
                ],
            }
        ).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self.manifests[digest] = manifest
        self.referrer_list.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": artifact_type,
                "digest": digest,
                "size": len(manifest),
            }
        )
        return digest


def keyless(**fields: str) -> Authority:
    spec = KeylessAuthority(trusted_root="staging", **fields)
    return Authority(name="bundles", spec=spec, mark=Mark("policy.yaml", 1, 1))


A_TNY = {"issuer": GITHUB_OAUTH, "subject": "a@tny.town"}


def target(digest: str) -> Target:
    return Target(ref=ImageRef(REGISTRY, REPOSITORY), digest=digest)


def bundle_txt() -> tuple[bytes, str]:
    """sigstore-python's staging bundle.txt: a bundle and the digest it signs."""
    assets = fixture(PY_ASSETS)
    return (assets / "bundle.txt.sigstore").read_bytes(), sha256_of(assets / "bundle.txt")


def run(
    registry: FakeRegistry, digest: str, authority: Authority | None = None, **limits: int
) -> Evidence:
    verifier = BundleVerifier(registry, **limits)
    evidence = verifier.verify(authority or keyless(**A_TNY), target(digest))
    assert evidence.verified or (evidence.error and "\n" not in evidence.error)
    return evidence


def test_verifier_verified() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    registry.attach(data)
    evidence = run(registry, digest)
    assert evidence.verified and evidence.error == ""
    (signature,) = evidence.signatures
    assert (signature.kind, signature.subject, signature.issuer) == (
        "keyless",
        "a@tny.town",
        GITHUB_OAUTH,
    )
    assert signature.signed_at == _at(2023, 4, 26, 0, 21, 9)


def test_verifier_no_referrers() -> None:
    evidence = run(FakeRegistry(), OTHER)
    assert evidence.error == f"no Sigstore bundle is attached to {REGISTRY}/{REPOSITORY}@{OTHER}"


def test_verifier_ignores_referrers_that_are_not_bundles() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    notation = registry.attach(b'{"not": "a bundle"}', artifact_type=NOTATION, layer_type=NOTATION)
    evidence = run(registry, digest)
    assert evidence.error == f"no Sigstore bundle is attached to {REGISTRY}/{REPOSITORY}@{digest}"
    assert registry.calls == [("referrers", digest)]
    registry.attach(data)
    registry.calls.clear()
    evidence = run(registry, digest)
    assert evidence.verified
    assert ("manifest", notation) not in registry.calls


def test_verifier_bundle_for_another_digest() -> None:
    data, signed = bundle_txt()
    registry = FakeRegistry()
    registry.attach(data)
    evidence = run(registry, OTHER)
    assert evidence.error == (
        f"the Sigstore bundle attached to {REGISTRY}/{REPOSITORY}@{OTHER} does not count: "
        f"the bundle signs {signed}, not the image digest {OTHER}"
    )


def test_verifier_dsse_bundle_for_another_digest() -> None:
    assets = fixture(PY_ASSETS)
    data = (assets / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    registry = FakeRegistry()
    registry.attach(data)
    evidence = run(registry, OTHER, keyless(issuer=GITHUB_ACTIONS, subject=BEACON))
    assert evidence.error.endswith(f"statement subject {A_TXT} is not the image digest {OTHER}")
    assert run(registry, A_TXT, keyless(issuer=GITHUB_ACTIONS, subject=BEACON)).verified


def test_verifier_wrong_signer() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    registry.attach(data)
    evidence = run(registry, digest, keyless(issuer=GITHUB_OAUTH, subject="b@tny.town"))
    assert evidence.error.endswith("does not count: subject is 'a@tny.town', expected 'b@tny.town'")


@pytest.mark.parametrize(
    ("fail", "reason"),
    [
        (
            "referrers",
            f"cannot list the referrers of {REGISTRY}/{REPOSITORY}@{OTHER}: "
            f"{REGISTRY} is unreachable: connection refused",
        ),
        ("manifest", f"{REGISTRY} is unreachable: connection refused"),
        ("blob", f"{REGISTRY} is unreachable: connection refused"),
    ],
)
def test_verifier_registry_error(fail: str, reason: str) -> None:
    data, _ = bundle_txt()
    registry = FakeRegistry(
        fail={fail: Unreachable(f"{REGISTRY} is unreachable: connection refused")}
    )
    registry.attach(data)
    evidence = run(registry, OTHER)
    assert not evidence.verified
    assert evidence.error.endswith(reason)


def test_verifier_examines_at_most_max_signatures() -> None:
    data, signed = bundle_txt()
    registry = FakeRegistry()
    for i in range(3):  # three different bundles, all for another digest
        registry.attach(data + b" " * i)
    evidence = run(registry, OTHER, max_signatures=2)
    assert evidence.error.startswith(
        "the image has 3 Sigstore bundles, more than limits.signaturesPerImage (2): only the "
        "first 2 were examined and 1 were not; raise limits.signaturesPerImage if a valid one "
        "may be among them; none of the 2 examined verified: bundle sha256:"
    )
    assert evidence.error.count(f"the bundle signs {signed}, not the image digest") == 2
    assert sum(1 for method, _ in registry.calls if method == "blob") == 2


def test_verifier_bundle_size_is_bounded() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    registry.attach(data)
    evidence = run(registry, digest, max_bundle_bytes=100)
    assert evidence.error.endswith(
        f"the bundle is {len(data)} bytes, more than limits.envelopeBytes (100 bytes); "
        "raise limits.envelopeBytes if this is legitimate"
    )
    assert not any(method == "blob" for method, _ in registry.calls)
    # A descriptor that understates the size: the registry client's bound still holds.
    registry = FakeRegistry()
    registry.attach(data, size=10)
    evidence = run(registry, digest, max_bundle_bytes=100)
    assert evidence.error.endswith(
        "the bundle is larger than limits.envelopeBytes (100 bytes); "
        "raise limits.envelopeBytes if this is legitimate"
    )


def test_verifier_referrer_without_bundle_layer() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    registry.attach(data, layer_type="application/octet-stream")
    evidence = run(registry, digest)
    assert evidence.error.endswith(
        "does not count: the referrer manifest has no layer with a Sigstore bundle media type"
    )


def test_verifier_one_good_bundle_is_enough() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    registry.attach(b"{}")
    registry.attach(data)
    evidence = run(registry, digest)
    assert len(evidence.signatures) == 1


@pytest.mark.parametrize(
    ("authority", "digest", "reason"),
    [
        (
            Authority(name="k", spec=KeyAuthority(public_key="-"), mark=Mark("p.yaml", 1, 1)),
            OTHER,
            "bundle verification needs a keyless authority",
        ),
        (keyless(**A_TNY), "", f"no digest for {REGISTRY}/{REPOSITORY}: a Sigstore bundle binds"),
        (
            Authority(
                name="x",
                spec=KeylessAuthority(subject="a", issuer="b", trusted_root="/nonexistent.json"),
                mark=Mark("p.yaml", 1, 1),
            ),
            OTHER,
            "cannot read trusted root /nonexistent.json",
        ),
    ],
)
def test_verifier_cannot_start(authority: Authority, digest: str, reason: str) -> None:
    registry = FakeRegistry()
    evidence = BundleVerifier(registry).verify(authority, target(digest))
    assert evidence.error.startswith(reason)
    assert registry.calls == []


def test_verifier_unexpected_error_in_one_bundle_does_not_hide_the_others() -> None:
    data, digest = bundle_txt()
    registry = FakeRegistry()
    odd = registry.attach(b"{}")
    registry.fail[odd] = RuntimeError("odd")
    registry.attach(data)
    assert run(registry, digest).verified
    evidence = run(registry, OTHER)
    assert f"bundle {odd[:19]}: RuntimeError: odd; bundle sha256:" in evidence.error


def test_verifier_reason_is_bounded() -> None:
    registry = FakeRegistry()
    for i in range(8):
        registry.attach(b"{}" + b" " * i)
    evidence = run(registry, OTHER)
    assert len(evidence.error) <= MAX_EVIDENCE_REASON
    assert evidence.error.startswith("none of the 8 Sigstore bundles attached to")


def test_verifier_never_raises() -> None:
    registry = FakeRegistry(fail={"referrers": RuntimeError("boom")})
    evidence = run(registry, OTHER)
    assert evidence.error == "bundle verification failed: RuntimeError: boom"
