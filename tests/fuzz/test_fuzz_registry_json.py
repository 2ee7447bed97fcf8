"""What registries (and signers) serve, broken: manifests, indexes, referrers responses, cosign
simple-signing payloads and Rekor SETs, Sigstore bundles and Notation envelopes. Each parser
raises only its module's typed error (BadResponse, SignatureProblem, BundleError,
NotationProblem); any other exception would be a crash on hostile registry content.

Seeds are real documents (a generated index and manifest, the shared signed fixtures), mutated
as JSON structure and as bytes.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import shared_fixtures
from pullgate.policy import Authority, KeyAuthority, Mark
from pullgate.registry.client import (
    Manifest,
    _descriptors,
    _error_detail,
    _json_object,
    _media_type,
)
from pullgate.registry.errors import BadResponse
from pullgate.registry.transport import Response
from pullgate.trust import load_root
from pullgate.verifiers.bundle import BundleError, verify_bundle
from pullgate.verifiers.cosign import (
    BUNDLE_ANNOTATION,
    SignatureLayer,
    SignatureProblem,
    _check_payload,
    _verify_set,
    verify_layer,
)
from pullgate.verifiers.notation_native.errors import NotationProblem
from pullgate.verifiers.notation_native.payload import _parse_payload
from pullgate.verifiers.notation_native.verify import _check_integrity, _parse

from .conftest import FUZZ, scaled
from .strategies import deep, dumped, json_bytes, json_values, mutated_json

pytestmark = pytest.mark.slow  # 10,000 examples a target: more than 10 s


D = "sha256:" + "d" * 64
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": D,
            "size": 100,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "e" * 64,
            "size": 7,
            "platform": {"architecture": "amd64", "os": "linux"},
        },
    ],
}
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2},
    "layers": [
        {
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": D,
            "size": 250,
            "annotations": {"dev.cosignproject.cosign/signature": "MEUC"},
        }
    ],
    "subject": {"mediaType": OCI_INDEX, "digest": D, "size": 10},
}
ERRORS = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}}]}

registry_bodies = st.one_of(
    mutated_json(INDEX).map(dumped),
    mutated_json(MANIFEST).map(dumped),
    mutated_json(ERRORS).map(dumped),
    json_bytes(json_values),
    json_bytes(st.just(INDEX)),
)
content_types = st.sampled_from(
    ["", OCI_INDEX, "application/json; charset=utf-8", "TEXT/PLAIN", ";"]
)


@FUZZ
@given(registry_bodies, content_types)
@example(deep(100_000), "")
@example(b'{"manifests": [{"digest": "sha256:' + b"0" * 64 + b'"}], "mediaType": 1e999}', "")
def test_registry_documents_parse_or_raise_bad_response(body: bytes, content_type: str) -> None:
    response = Response(200, {"content-type": content_type}, body, "https://r.example/v2/x")
    assert isinstance(_error_detail(response), str)  # error bodies never raise
    try:
        doc = _json_object(body, "manifest r.example/x@" + D)
        assert isinstance(doc, dict)
        media_type = _media_type(doc, response, "manifest")
        assert isinstance(media_type, str)
        descriptors = _descriptors(doc, "referrers")
    except BadResponse as exc:
        assert str(exc)
        return
    for descriptor in descriptors:
        assert isinstance(descriptor, dict)
        assert isinstance(descriptor["digest"], str)
    try:
        assert Manifest(media_type, D, body).json() == doc
    except BadResponse:
        raise AssertionError("a document that parsed once must parse again") from None


# -- cosign: simple-signing payloads, signature annotations, Rekor SETs -------------------------

PAYLOAD = {
    "critical": {
        "identity": {"docker-reference": "ghcr.io/acme/app"},
        "image": {"docker-manifest-digest": D},
        "type": "cosign container image signature",
    },
    "optional": {"creator": "ci", "n": 1},
}
payloads = st.one_of(
    mutated_json(PAYLOAD, max_edits=4).map(dumped),
    json_bytes(st.just(PAYLOAD)),
    json_bytes(json_values),
)


@FUZZ
@given(payloads)
@example(deep(100_000, "{"))
@example(
    json.dumps(
        {
            "critical": {
                "type": "cosign container image signature",
                "image": {"docker-manifest-digest": D},
            }
        }
    ).encode()[:-1]
    + b', "optional": '
    + deep(900)
    + b"}"
)
def test_simple_signing_payloads_parse_or_raise_signature_problem(payload: bytes) -> None:
    try:
        annotations = _check_payload(payload, D)
    except SignatureProblem as exc:
        assert str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())


@cache
def _rekor_fixture() -> tuple[dict[str, Any], dict[str, str], bytes]:
    """The shared cosign fixture signed with a key and logged in production Rekor."""
    base = shared_fixtures() / "sigstore/image/signature/fixtures/dir-img-cosign-key-rekor-valid"
    raw = (base / "signature-1").read_bytes()
    doc = json.loads(raw[raw.index(b"{") :])
    return (
        json.loads(doc["annotations"][BUNDLE_ANNOTATION]),
        doc["annotations"],
        base64.b64decode(doc["payload"]),
    )


def _production() -> Any:
    return load_root(str(shared_fixtures() / "sigstore/trust/production.trusted_root.json"))


@st.composite
def rekor_bundles(draw: st.DrawFn) -> str:
    bundle, _, _ = _rekor_fixture()
    if draw(st.booleans()):
        return json.dumps(draw(mutated_json(bundle, max_edits=2)))
    # Only the signed fields: integratedTime, logIndex, logID and body.
    field = draw(st.sampled_from(["integratedTime", "logIndex", "logID", "body"]))
    value = draw(st.sampled_from([10**20, -(10**20), 2**63, -1, 0, 1e308, "1", "", None, [], "zz"]))
    changed = json.loads(json.dumps(bundle))
    changed["Payload"][field] = value
    return json.dumps(changed)


@scaled(0.3, minimum=300)
@given(rekor_bundles())
@example(json.dumps({"SignedEntryTimestamp": "", "Payload": {"integratedTime": 1e999}}))
def test_rekor_sets_verify_or_raise_signature_problem(bundle_text: str) -> None:
    """Mutations of a real SET (so the log id is known and every later step is reached)."""
    root = _production()
    try:
        entry = _verify_set(bundle_text, root)
    except SignatureProblem as exc:
        assert str(exc)
        return
    assert isinstance(entry.body, dict)


@pytest.mark.parametrize("value", [10**20, 2**63, -1, 1e308, "1e400"])
def test_a_set_with_an_impossible_time_is_malformed(value: object) -> None:
    """Found by the fuzzer: a huge integratedTime escaped as OverflowError before the SET's
    signature was checked (keyless checks the SET first), ending the whole verifier call."""
    bundle, _, _ = _rekor_fixture()
    changed = json.loads(json.dumps(bundle))
    changed["Payload"]["integratedTime"] = value
    with pytest.raises(SignatureProblem, match="malformed"):
        _verify_set(json.dumps(changed), _production())


_SIGNER = ec.generate_private_key(ec.SECP256R1())
_SIGNER_AUTHORITY = Authority(
    name="fuzz",
    mark=Mark("fuzz.yaml", 1, 1),
    spec=KeyAuthority(
        public_key=_SIGNER.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    ),
)


@scaled(0.3, minimum=200)
@given(payloads, st.one_of(rekor_bundles(), st.sampled_from(["", "{}", "x"])))
def test_signed_layers_with_bad_payloads_and_sets_raise_signature_problem(
    payload: bytes, bundle: str
) -> None:
    """A signature that verifies over a broken payload, with a broken SET: the steps after the
    signature check see the hostile bytes too."""
    signature = base64.b64encode(_SIGNER.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    annotations = {"dev.cosignproject.cosign/signature": signature, BUNDLE_ANNOTATION: bundle}
    try:
        layer = SignatureLayer.from_annotations(payload, annotations)
        verify_layer(layer, _SIGNER_AUTHORITY, D)
    except SignatureProblem as exc:
        assert str(exc)


# -- Sigstore bundles -----------------------------------------------------------------------------

CONFORMANCE = Path("sigstore/sigstore-conformance/test/assets/bundle-verify")


@cache
def _bundle_seeds() -> tuple[Any, ...]:
    root = shared_fixtures() / CONFORMANCE
    seeds = []
    for path in sorted(root.glob("*/bundle.sigstore.json")):
        try:
            seeds.append(json.loads(path.read_bytes()))
        except ValueError:
            continue  # the conformance suite's malformed-JSON case
        if len(seeds) == 12:
            break
    assert seeds, f"no bundles under {root}"
    return tuple(seeds)


@st.composite
def sigstore_bundles(draw: st.DrawFn) -> bytes:
    seed = draw(st.sampled_from(_bundle_seeds()))
    if draw(st.integers(0, 4)) == 0:
        return draw(json_bytes(st.just(seed)))
    return dumped(draw(mutated_json(seed, max_edits=3)))


@scaled(0.2, minimum=200)
@given(sigstore_bundles())
@example(deep(100_000))
def test_sigstore_bundles_verify_or_raise_bundle_error(data: bytes) -> None:
    try:
        verify_bundle(data, _production(), digest=D, identity=None)
    except BundleError as exc:
        assert str(exc)


# -- Notation envelopes ---------------------------------------------------------------------------

MOCK = "notation/notation-go/internal/mock/testdata"


@cache
def _jws_seeds() -> tuple[Any, ...]:
    root = shared_fixtures() / MOCK
    return tuple(json.loads(p.read_bytes()) for p in sorted(root.glob("*_sig_env*.json")))


cose_headers = st.dictionaries(
    st.sampled_from([1, 3, 2, "io.cncf.notary.signingScheme", "io.cncf.notary.signingTime", -1]),
    st.sampled_from([-7, -37, 0, "notary.x509", b"", [], "x", ["io.cncf.notary.signingScheme"]])
    | st.integers(),
    max_size=5,
)


@st.composite
def cose_envelopes(draw: st.DrawFn) -> bytes:
    protected = cbor2.dumps(draw(cose_headers))
    unprotected = {33: draw(st.lists(st.binary(max_size=40), max_size=2))}
    payload = draw(
        st.binary(max_size=40) | mutated_json({"targetArtifact": {"digest": D}}).map(dumped)
    )
    parts = [protected, unprotected, payload, draw(st.binary(min_size=1, max_size=70))]
    tag = draw(st.sampled_from([18, 18, 18, 98]))
    return cbor2.dumps(cbor2.CBORTag(tag, parts))


@st.composite
def jws_envelopes(draw: st.DrawFn) -> bytes:
    seed = draw(st.sampled_from(_jws_seeds()))
    return dumped(draw(mutated_json(seed, max_edits=3)))


envelopes = st.one_of(
    st.tuples(jws_envelopes(), st.just("application/jose+json")),
    st.tuples(cose_envelopes(), st.just("application/cose")),
    st.tuples(
        st.binary(max_size=100), st.sampled_from(["application/jose+json", "application/cose", "x"])
    ),
)


@scaled(0.5, minimum=500)
@given(envelopes)
@example((deep(100_000, "{"), "application/jose+json"))
@example((b"\xd2" * 100_000, "application/cose"))  # 100,000 nested CBOR tags
@example((b"\x81" * 100_000 + b"\x00", "application/cose"))  # 100,000 nested arrays
def test_notation_envelopes_parse_or_raise_notation_problem(envelope: tuple[bytes, str]) -> None:
    data, media_type = envelope
    try:
        env = _parse(data, media_type)
        _check_integrity(env)
        _parse_payload(env.payload)
    except NotationProblem as exc:
        assert str(exc)
