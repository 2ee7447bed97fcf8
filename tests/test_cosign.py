"""Classic cosign signatures, made by real cosign 2.5 in a real registry, verified by pullgate
and by `cosign verify` in the same test: the two verdicts must agree."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import shared_fixtures
from lab.registry import Registry, free_port, sha256, start_registry
from lab.sigstore import (
    Cosign,
    Log,
    PrivateSigstore,
    add_set,
    blob,
    cosign_binary,
    push_signature_layer,
    read_signatures,
    write_signatures,
)
from lab.silent import silent_server
from pullgate.evidence import Evidence, Target
from pullgate.policy import Authority, KeyAuthority, KeylessAuthority, Mark
from pullgate.reference import parse_reference
from pullgate.registry import RegistryClient, Urllib3Transport
from pullgate.verifiers.cosign import CosignVerifier

MARK = Mark("test", 1, 1)
UTC = datetime.UTC


@pytest.fixture(scope="module")
def client(registry: Registry) -> RegistryClient:
    return RegistryClient(Urllib3Transport(), insecure=[registry.host], timeout=5, retries=0)


@pytest.fixture(scope="module")
def cosign(tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign(cosign_binary(), tmp_path_factory.mktemp("cosign"))


@pytest.fixture(scope="module")
def keys(cosign: Cosign) -> dict[str, tuple[Path, Path]]:
    return {name: cosign.key_pair(name) for name in ("release", "other", "third")}


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> PrivateSigstore:
    return PrivateSigstore()


@pytest.fixture(scope="module")
def root(sigstore: PrivateSigstore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore.trusted_root(tmp_path_factory.mktemp("trust") / "trusted_root.json")


def new_image(registry: Registry) -> tuple[str, str, str]:
    """(repository, digest, ref) of a fresh image."""
    repo = f"acme/app-{uuid.uuid4().hex[:8]}"
    digest = registry.push_image(repo, "v1", content=repo)
    return repo, digest, f"{registry.host}/{repo}@{digest}"


def key_authority(pub: Path, **kw: str) -> Authority:
    return Authority("release", KeyAuthority(public_key=pub.read_text(), **kw), MARK)  # type: ignore[arg-type]


def keyless_authority(root: Path | str, **kw: str) -> Authority:
    spec = {"issuer": "https://accounts.acme.example", "subject": "signer@acme.example", **kw}
    return Authority("ci", KeylessAuthority(trusted_root=str(root), **spec), MARK)  # type: ignore[arg-type]


def check(client: RegistryClient, authority: Authority, ref: str, **kw: int) -> Evidence:
    parsed = parse_reference(ref)
    assert parsed.digest
    return CosignVerifier(client, **kw).verify(authority, Target(parsed, parsed.digest))


# -- key-based --------------------------------------------------------------------------------


def test_signed_with_the_key(registry, client, cosign, keys) -> None:
    _, _, ref = new_image(registry)
    key, pub = keys["release"]
    cosign.sign(ref, key)
    ev = check(client, key_authority(pub), ref)
    assert ev.verified, ev.error
    (sig,) = ev.signatures
    assert sig.kind == "key" and not sig.tlog and sig.signed_at is None and len(sig.key_id) == 64
    assert cosign.verify(ref, "--key", str(pub), "--insecure-ignore-tlog").returncode == 0


def test_unsigned(registry, client, cosign, keys) -> None:
    repo, digest, ref = new_image(registry)
    ev = check(client, key_authority(keys["release"][1]), ref)
    assert not ev.verified
    tag = digest.replace(":", "-") + ".sig"
    assert ev.error == f"no cosign signature for {registry.host}/{repo}@{digest} (no tag {tag})"
    assert (
        cosign.verify(ref, "--key", str(keys["release"][1]), "--insecure-ignore-tlog").returncode
        != 0
    )


def test_signed_with_another_key(registry, client, cosign, keys) -> None:
    _, _, ref = new_image(registry)
    cosign.sign(ref, keys["other"][0])
    ev = check(client, key_authority(keys["release"][1]), ref)
    assert ev.error == "the signature does not verify with this authority's key"
    assert (
        cosign.verify(ref, "--key", str(keys["release"][1]), "--insecure-ignore-tlog").returncode
        != 0
    )


def test_tampered_payload(registry, client, cosign, keys) -> None:
    repo, digest, ref = new_image(registry)
    cosign.sign(ref, keys["release"][0])
    manifest = read_signatures(registry, repo, digest)
    layer = manifest["layers"][0]
    payload = json.loads(blob(registry, repo, layer["digest"]))
    payload["optional"] = {"note": "added after signing"}
    data = json.dumps(payload).encode()
    layer.update(digest=registry.push_blob(repo, data), size=len(data))
    write_signatures(registry, repo, digest, manifest)
    ev = check(client, key_authority(keys["release"][1]), ref)
    assert ev.error == "the signature does not verify with this authority's key"
    assert (
        cosign.verify(ref, "--key", str(keys["release"][1]), "--insecure-ignore-tlog").returncode
        != 0
    )


def test_tampered_signature(registry, client, cosign, keys) -> None:
    repo, digest, ref = new_image(registry)
    cosign.sign(ref, keys["release"][0])
    manifest = read_signatures(registry, repo, digest)
    ann = manifest["layers"][0]["annotations"]
    raw = bytearray(base64.b64decode(ann["dev.cosignproject.cosign/signature"]))
    raw[-1] ^= 1
    ann["dev.cosignproject.cosign/signature"] = base64.b64encode(bytes(raw)).decode()
    write_signatures(registry, repo, digest, manifest)
    ev = check(client, key_authority(keys["release"][1]), ref)
    assert ev.error == "the signature does not verify with this authority's key"
    assert (
        cosign.verify(ref, "--key", str(keys["release"][1]), "--insecure-ignore-tlog").returncode
        != 0
    )


def test_a_payload_for_another_digest(registry, client, cosign, keys) -> None:
    repo_a, digest_a, ref_a = new_image(registry)
    cosign.sign(ref_a, keys["release"][0])
    manifest = read_signatures(registry, repo_a, digest_a)
    digest_b = registry.push_image(repo_a, "v2", content="another image")
    # Copy A's signature, blob and all, to B's signature tag.
    write_signatures(registry, repo_a, digest_b, manifest)
    ref_b = f"{registry.host}/{repo_a}@{digest_b}"
    ev = check(client, key_authority(keys["release"][1]), ref_b)
    assert ev.error == f"the payload is for {digest_a}, not for this image ({digest_b})"
    assert (
        cosign.verify(ref_b, "--key", str(keys["release"][1]), "--insecure-ignore-tlog").returncode
        != 0
    )


def test_tlog_required_without_a_set(registry, client, cosign, keys) -> None:
    _, _, ref = new_image(registry)
    cosign.sign(ref, keys["release"][0])
    ev = check(client, key_authority(keys["release"][1], tlog="required"), ref)
    assert (
        ev.error
        == "the signature has no Rekor SET, and this authority requires one (tlog: required)"
    )


def test_key_with_a_set_from_the_log(registry, client, cosign, keys, sigstore, root) -> None:
    repo, digest, ref = new_image(registry)
    key, pub = keys["release"]
    cosign.sign(ref, key)
    logged = int(datetime.datetime.now(UTC).timestamp()) - 3600
    add_set(
        registry, repo, digest, sigstore.rekor, public_pem=pub.read_bytes(), integrated_time=logged
    )
    ev = check(client, key_authority(pub, tlog="required", trusted_root=str(root)), ref)
    assert ev.verified, ev.error
    (sig,) = ev.signatures
    assert sig.tlog and sig.signed_at == datetime.datetime.fromtimestamp(logged, UTC)
    # a SET from a log the trusted root does not know
    add_set(registry, repo, digest, Log(), public_pem=pub.read_bytes())
    ev = check(client, key_authority(pub, trusted_root=str(root)), ref)
    assert "which the" in ev.error and "trusted root does not know" in ev.error


def test_a_replayed_set(registry, client, cosign, keys, sigstore, root) -> None:
    key, pub = keys["release"]
    repo_a, digest_a, ref_a = new_image(registry)
    repo_b, digest_b, ref_b = new_image(registry)
    for ref in (ref_a, ref_b):
        cosign.sign(ref, key)
    add_set(registry, repo_a, digest_a, sigstore.rekor, public_pem=pub.read_bytes())
    a = read_signatures(registry, repo_a, digest_a)
    b = read_signatures(registry, repo_b, digest_b)
    b["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"] = a["layers"][0]["annotations"][
        "dev.sigstore.cosign/bundle"
    ]
    write_signatures(registry, repo_b, digest_b, b)
    ev = check(client, key_authority(pub, trusted_root=str(root)), ref_b)
    assert ev.error == "the Rekor entry is for another payload (replayed SET?)"


def test_more_signatures_than_the_bound(registry, client, cosign, keys) -> None:
    _, _, ref = new_image(registry)
    for name in ("other", "third", "release"):
        cosign.sign(ref, keys[name][0])  # one layer per key (cosign skips a key's second signature)
    ev = check(client, key_authority(keys["release"][1]), ref, max_signatures=2)
    assert not ev.verified
    assert ev.error.startswith(
        "the image has 3 cosign signatures, more than limits.signaturesPerImage (2): only the "
        "first 2 were examined and 1 were not; raise limits.signaturesPerImage if a valid one "
        "may be among them; none of the 2 examined verified: signature 1: "
    )
    assert check(client, key_authority(keys["release"][1]), ref).verified


def test_an_oversized_payload(registry, client, cosign, keys) -> None:
    _, _, ref = new_image(registry)
    cosign.sign(ref, keys["release"][0])
    ev = check(client, key_authority(keys["release"][1]), ref, max_payload_bytes=64)
    assert not ev.verified and "64" in ev.error


# -- the registry failing ----------------------------------------------------------------------


def test_registry_down(keys) -> None:
    port = free_port()
    client = RegistryClient(
        Urllib3Transport(), insecure=[f"127.0.0.1:{port}"], timeout=1, retries=0
    )
    ref = f"127.0.0.1:{port}/acme/app@sha256:{'a' * 64}"
    ev = check(client, key_authority(keys["release"][1]), ref)
    assert not ev.verified
    assert ev.error.startswith(
        f"cannot fetch the cosign signatures of 127.0.0.1:{port}/acme/app@sha256:"
    )


def test_registry_slower_than_the_timeout(keys) -> None:
    with silent_server() as host:
        client = RegistryClient(Urllib3Transport(), insecure=[host], timeout=0.4, retries=0)
        ev = check(client, key_authority(keys["release"][1]), f"{host}/acme/app@sha256:{'b' * 64}")
    assert not ev.verified
    assert "0.4" in ev.error and "time" in ev.error.lower()


def test_registry_needs_credentials(tmp_path, keys) -> None:
    registry = start_registry(tmp_path / "reg", htpasswd={"ci": "s3cret-pass"})
    try:
        client = RegistryClient(Urllib3Transport(), insecure=[registry.host], timeout=2, retries=0)
        ev = check(
            client, key_authority(keys["release"][1]), f"{registry.host}/acme/app@sha256:{'c' * 64}"
        )
    finally:
        registry.stop()
    assert not ev.verified and "cannot fetch the cosign signatures" in ev.error
    assert "credential" in ev.error


# -- keyless: a private Sigstore -----------------------------------------------------------------


def sign_keyless(
    registry, cosign, sigstore, *, sct: bool = True, log: Log | None = None, **leaf_kw
) -> tuple[str, str, str]:
    repo, digest, ref = new_image(registry)
    leaf = sigstore.leaf(sct=sct, **leaf_kw)
    d = cosign.home / f"leaf-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    key = cosign.import_key(d.name, leaf)
    (d / "leaf.pem").write_bytes(leaf.cert_pem())
    chain = sigstore.intermediate.public_bytes(
        serialization.Encoding.PEM
    ) + sigstore.root.public_bytes(serialization.Encoding.PEM)
    (d / "chain.pem").write_bytes(chain)
    cosign.sign(
        ref,
        key,
        "--certificate",
        str(d / "leaf.pem"),
        "--certificate-chain",
        str(d / "chain.pem"),
        env=sigstore.cosign_env(d),
    )
    if log is not False:  # type: ignore[comparison-overlap]
        add_set(registry, repo, digest, log or sigstore.rekor)
    return repo, digest, ref


def cosign_keyless(
    cosign,
    sigstore,
    ref,
    tmp_path,
    identity="signer@acme.example",
    issuer="https://accounts.acme.example",
):
    env = sigstore.cosign_env(tmp_path)
    return cosign.verify(
        ref,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer,
        "--offline",
        env=env,
    )


def test_keyless_signed(registry, client, cosign, sigstore, root, tmp_path) -> None:
    _, _, ref = sign_keyless(
        registry, cosign, sigstore, extensions={5: "acme/api", 12: "https://github.com/acme/api"}
    )
    ev = check(client, keyless_authority(root), ref)
    assert ev.verified, ev.error
    (sig,) = ev.signatures
    assert (sig.kind, sig.subject, sig.issuer, sig.san) == (
        "keyless",
        "signer@acme.example",
        "https://accounts.acme.example",
        ("signer@acme.example",),
    )
    assert sig.extensions["githubWorkflowRepository"] == "acme/api"
    assert sig.extensions["sourceRepositoryURI"] == "https://github.com/acme/api"
    assert sig.tlog and sig.signed_at is not None
    r = cosign_keyless(cosign, sigstore, ref, tmp_path)
    assert r.returncode == 0, r.stderr


def test_keyless_regex_identity(registry, client, cosign, sigstore, root) -> None:
    _, _, ref = sign_keyless(
        registry,
        cosign,
        sigstore,
        email=None,
        uri="https://github.com/acme/api/.github/workflows/release.yml@refs/tags/v1.2",
    )
    auth = keyless_authority(
        root,
        subject="",
        subject_regexp=r"^https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*$",
        issuer="",
        issuer_regexp=r"^https://accounts\.acme\.example$",
    )
    assert check(client, auth, ref).verified
    other = replace(auth.spec, subject_regexp=r"^https://github\.com/evil/.*$")
    ev = check(client, Authority("ci", other, MARK), ref)
    assert ev.error.startswith(
        "subject is 'https://github.com/acme/api/.github/workflows/release.yml@refs/tags/v1.2', "
        "expected 'a match for ^https://github\\.com/evil/.*$'"
    )


def test_keyless_wrong_identity(registry, client, cosign, sigstore, root, tmp_path) -> None:
    _, _, ref = sign_keyless(registry, cosign, sigstore)
    ev = check(client, keyless_authority(root, subject="release@acme.example"), ref)
    assert ev.error == "subject is 'signer@acme.example', expected 'release@acme.example'"
    assert (
        cosign_keyless(cosign, sigstore, ref, tmp_path, identity="release@acme.example").returncode
        != 0
    )


def test_keyless_wrong_issuer(registry, client, cosign, sigstore, root, tmp_path) -> None:
    _, _, ref = sign_keyless(registry, cosign, sigstore, issuer="https://evil.example")
    ev = check(client, keyless_authority(root), ref)
    assert ev.error == "issuer is 'https://evil.example', expected 'https://accounts.acme.example'"
    assert cosign_keyless(cosign, sigstore, ref, tmp_path).returncode != 0


def test_keyless_without_a_set(registry, client, cosign, sigstore, root) -> None:
    _, _, ref = sign_keyless(registry, cosign, sigstore, log=False)  # type: ignore[arg-type]
    ev = check(client, keyless_authority(root), ref)
    assert ev.error.startswith("the signature has no Rekor SET, so nothing proves when")


def test_keyless_expired_ca(registry, client, cosign, sigstore, tmp_path) -> None:
    _, _, ref = sign_keyless(registry, cosign, sigstore)
    ended = sigstore.trusted_root(
        tmp_path / "old.json", ca_end=datetime.datetime.now(UTC) - datetime.timedelta(hours=1)
    )
    ev = check(client, keyless_authority(ended), ref)
    assert "no certificate authority of the" in ev.error and "(expired CA?)" in ev.error


def test_keyless_certificate_from_another_ca(registry, client, cosign, root) -> None:
    stranger = PrivateSigstore()
    _, _, ref = sign_keyless(registry, cosign, stranger, log=None)
    ev = check(client, keyless_authority(root), ref)
    assert not ev.verified  # its SET is from a log this root does not know, either way
    assert "does not know" in ev.error or "not issued by" in ev.error


def test_keyless_missing_sct(registry, client, cosign, sigstore, root) -> None:
    _, _, ref = sign_keyless(registry, cosign, sigstore, sct=False)
    ev = check(client, keyless_authority(root), ref)
    assert (
        ev.error
        == "the certificate carries no SCT, and this authority requires one (ctlog: required)"
    )
    assert check(client, keyless_authority(root, ctlog="optional"), ref).verified


def test_keyless_signature_of_a_key_authority_is_not_keyless(
    registry, client, cosign, keys, root
) -> None:
    _, _, ref = new_image(registry)
    cosign.sign(ref, keys["release"][0])
    ev = check(client, keyless_authority(root), ref)
    assert ev.error == "the signature carries no certificate (signed with a key, not keyless?)"


# -- signatures made by other projects (../shared/fixtures) ------------------------------------


FIXTURES = "sigstore/image/signature/fixtures"


def upload_fixture(registry: Registry, name: str) -> str:
    base = shared_fixtures() / FIXTURES / name
    digest = sha256((base / "manifest.json").read_bytes())
    raw = (base / "signature-1").read_bytes()
    doc = json.loads(raw[raw.index(b"{") :])
    repo = f"fixtures/{name}"
    push_signature_layer(
        registry, repo, digest, base64.b64decode(doc["payload"]), doc["annotations"]
    )
    return f"{registry.host}/{repo}@{digest}"


@pytest.mark.parametrize(
    ("name", "pub", "kw", "ok"),
    [
        ("dir-img-cosign-valid", "cosign.pub", {}, True),
        ("dir-img-cosign-valid", "cosign2.pub", {}, False),
        ("dir-img-cosign-valid-with-tag", "cosign.pub", {}, True),
        # fixtures/README.md says cosign.pub; the signature verifies with cosign2.pub only (as
        # containers/image's own tests use it), and its SET with the production Rekor key.
        ("dir-img-cosign-key-rekor-valid", "cosign2.pub", {"tlog": "required"}, True),
        ("dir-img-cosign-key-rekor-valid", "cosign.pub", {"tlog": "required"}, False),
    ],
)
def test_classic_fixtures_from_containers_image(registry, client, name, pub, kw, ok) -> None:
    ref = upload_fixture(registry, name)
    ev = check(client, key_authority(shared_fixtures() / FIXTURES / pub, **kw), ref)
    assert ev.verified is ok, ev.error
    if ok and kw.get("tlog"):
        (sig,) = ev.signatures
        assert sig.tlog and sig.signed_at == datetime.datetime.fromtimestamp(1674251859, UTC)
    if not ok:
        assert ev.error == "the signature does not verify with this authority's key"


def test_classic_pki_fixture_chains_to_its_roots(registry, client, tmp_path) -> None:
    base = shared_fixtures() / FIXTURES
    intermediate = x509.load_pem_x509_certificates(
        (base / "pki_intermediate_crts.pem").read_bytes()
    )
    roots = x509.load_pem_x509_certificates((base / "pki_root_crts.pem").read_bytes())
    root_file = tmp_path / "pki_root.json"
    root_file.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [],
                "ctlogs": [],
                "certificateAuthorities": [
                    {
                        "subject": {"commonName": "Linuxera"},
                        "certChain": {
                            "certificates": [
                                {
                                    "rawBytes": base64.b64encode(
                                        c.public_bytes(serialization.Encoding.DER)
                                    ).decode()
                                }
                                for c in [*intermediate, *roots]
                            ]
                        },
                        "validFor": {"start": "2024-01-01T00:00:00Z"},
                    }
                ],
            }
        )
    )
    ref = upload_fixture(registry, "dir-img-cosign-pki-valid")
    spec = dict(
        subject="qiwan@redhat.com", issuer="", issuer_regexp="^$", tlog="optional", ctlog="optional"
    )
    ev = check(client, keyless_authority(root_file, **spec), ref)
    assert ev.verified, ev.error
    assert ev.signatures[0].subject == "qiwan@redhat.com" and not ev.signatures[0].tlog
    ev = check(
        client, keyless_authority(root_file, **{**spec, "subject": "someone@else.example"}), ref
    )
    assert (
        ev.error
        == "subject is 'qiwan@redhat.com, myhost.example.com', expected 'someone@else.example'"
    )
