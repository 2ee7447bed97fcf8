"""pullgate.registry against a real docker-registry, a scripted network, and docker config.json.

The real registry (Debian's docker-registry 2.8) proves the wire format and basic auth; the
scripted transport produces what a healthy local registry never does (bearer tokens, rate
limits, redirects to storage, lying servers); real sockets prove the timeout and refusal paths.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lab.registry import OCI_EMPTY, Registry, free_port, sha256, start_registry
from lab.silent import silent_server as silent
from pullgate.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    BadReference,
    BadResponse,
    Credentials,
    DigestMismatch,
    DockerConfig,
    Manifest,
    NotFound,
    RegistryClient,
    RegistryError,
    Response,
    TooLarge,
    Unauthorized,
    Unreachable,
    Urllib3Transport,
    parse_challenges,
)

SIG_TYPE = "application/vnd.example.signature"
SBOM_TYPE = "application/vnd.example.sbom"

# --- the real registry -------------------------------------------------------------------------


@dataclass
class Lab:
    registry: Registry
    image: str  # digest of app:v1 (OCI)
    manifest: bytes
    docker_image: str  # digest of app:docker
    index: str  # digest of app:multi (OCI index)
    docker_list: str  # digest of app:list (Docker manifest list)
    signature: str  # digest of the artifact whose subject is `image`
    sbom: str

    @property
    def host(self) -> str:
        return self.registry.host


def artifact(reg: Registry, repo: str, subject: str, subject_size: int, kind: str) -> bytes:
    """An OCI 1.1 artifact (image manifest with artifactType and subject)."""
    empty = {"mediaType": OCI_EMPTY, "digest": reg.push_blob(repo, b"{}"), "size": 2}
    payload = kind.encode()
    layer = {
        "mediaType": "text/plain",
        "digest": reg.push_blob(repo, payload),
        "size": len(payload),
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind,
        "config": empty,
        "layers": [layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        image = reg.push_image("team/app", "v1", content="one")
        status, _, manifest = reg._request(
            "GET", f"/v2/team/app/manifests/{image}", headers={"Accept": OCI_MANIFEST}
        )
        assert status == 200
        docker_image = reg.push_docker_image("team/app", "docker", content="two")
        _, _, docker_manifest = reg._request(
            "GET", "/v2/team/app/manifests/docker", headers={"Accept": DOCKER_MANIFEST}
        )
        platform = {"architecture": "amd64", "os": "linux"}
        index = reg.push_index(
            "team/app",
            "multi",
            [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image,
                    "size": len(manifest),
                    "platform": platform,
                }
            ],
        )
        docker_list = reg.push_index(
            "team/app",
            "list",
            [
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": docker_image,
                    "size": len(docker_manifest),
                    "platform": platform,
                }
            ],
            DOCKER_MANIFEST_LIST,
        )
        # Two referrers of app:v1, published the way OCI 1.1 clients do without a referrers API:
        # the artifacts by digest, and an index of them at the tag sha256-<hex of the subject>.
        sig = artifact(reg, "team/app", image, len(manifest), SIG_TYPE)
        sbom = artifact(reg, "team/app", image, len(manifest), SBOM_TYPE)
        descriptors = []
        for doc, kind in ((sig, SIG_TYPE), (sbom, SBOM_TYPE)):
            digest = reg.push_manifest("team/app", sha256(doc), doc)
            descriptors.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(doc),
                    "artifactType": kind,
                }
            )
        reg.push_index("team/app", "sha256-" + image.removeprefix("sha256:"), descriptors)
        yield Lab(reg, image, manifest, docker_image, index, docker_list, sha256(sig), sha256(sbom))
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def real(lab: Lab) -> RegistryClient:
    return RegistryClient(insecure=[lab.host], timeout=5)


def test_manifest_by_tag_and_by_digest(lab: Lab, real: RegistryClient) -> None:
    by_tag = real.manifest(lab.host, "team/app", "v1")
    assert by_tag == Manifest(OCI_MANIFEST, lab.image, lab.manifest)
    assert by_tag.json()["layers"][0]["mediaType"].startswith("application/vnd.oci.image.layer")
    by_digest = real.manifest(lab.host, "team/app", lab.image)
    assert by_digest.digest == lab.image
    assert by_digest.data == lab.manifest


def test_blobs_are_fetched_and_verified(lab: Lab, real: RegistryClient) -> None:
    doc = real.manifest(lab.host, "team/app", "v1").json()
    config = real.blob(lab.host, "team/app", doc["config"]["digest"])
    assert json.loads(config)["os"] == "linux"
    layer = real.blob(lab.host, "team/app", doc["layers"][0]["digest"])
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == doc["layers"][0]["digest"]
    assert len(layer) == doc["layers"][0]["size"]


def test_real_transport_bounds_bodies(lab: Lab, real: RegistryClient) -> None:
    doc = real.manifest(lab.host, "team/app", "v1").json()
    with pytest.raises(TooLarge) as caught:
        real.blob(lab.host, "team/app", doc["layers"][0]["digest"], max_bytes=10)
    assert "max_bytes=10 bytes" in caught.value.reason
    small = RegistryClient(insecure=[lab.host], max_manifest_bytes=100)
    with pytest.raises(TooLarge, match="max_manifest_bytes=100 bytes"):
        small.manifest(lab.host, "team/app", "v1")


def test_resolve(lab: Lab, real: RegistryClient) -> None:
    assert real.resolve(lab.host, "team/app", "v1") == lab.image
    assert real.resolve(lab.host, "team/app", lab.image) == lab.image
    assert real.resolve(lab.host, "team/app", "multi") == lab.index
    with pytest.raises(NotFound):
        real.resolve(lab.host, "team/app", "no-such-tag")


def test_index_and_docker_media_types(lab: Lab, real: RegistryClient) -> None:
    index = real.manifest(lab.host, "team/app", "multi")
    assert (index.media_type, index.digest) == (OCI_INDEX, lab.index)
    assert index.json()["manifests"][0]["digest"] == lab.image
    docker = real.manifest(lab.host, "team/app", "docker")
    assert (docker.media_type, docker.digest) == (DOCKER_MANIFEST, lab.docker_image)
    listed = real.manifest(lab.host, "team/app", "list")
    assert (listed.media_type, listed.digest) == (DOCKER_MANIFEST_LIST, lab.docker_list)
    assert real.blob(lab.host, "team/app", docker.json()["config"]["digest"])


def test_registry_negotiates_on_accept(lab: Lab, real: RegistryClient) -> None:
    # docker-registry 2.8 answers 404 when Accept excludes the stored type of an OCI manifest...
    with pytest.raises(NotFound, match="accept header does not support OCI manifests"):
        real.manifest(lab.host, "team/app", "v1", accept=(DOCKER_MANIFEST,))
    # ...and serves the linux/amd64 child for a manifest list: not the digest of the tag.
    child = real.manifest(lab.host, "team/app", "list", accept=(DOCKER_MANIFEST,))
    assert child.digest == lab.docker_image


def test_referrers_through_the_tag_fallback(lab: Lab, real: RegistryClient) -> None:
    found = real.referrers(lab.host, "team/app", lab.image)
    assert [d["digest"] for d in found] == [lab.signature, lab.sbom]
    sigs = real.referrers(lab.host, "team/app", lab.image, artifact_type=SIG_TYPE)
    assert [(d["digest"], d["artifactType"]) for d in sigs] == [(lab.signature, SIG_TYPE)]
    assert real.referrers(lab.host, "team/app", lab.image, artifact_type="x/none") == []
    # The referrer itself is a verifiable manifest whose subject is the image.
    sig = real.manifest(lab.host, "team/app", lab.signature)
    assert sig.json()["subject"]["digest"] == lab.image
    assert real.referrers(lab.host, "team/app", lab.docker_image) == []


def test_not_found(lab: Lab, real: RegistryClient) -> None:
    with pytest.raises(NotFound) as caught:
        real.manifest(lab.host, "no/such-repo", "v1")
    assert f"{lab.host}/no/such-repo:v1" in caught.value.reason
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
        real.manifest(lab.host, "team/app", "nope")
    with pytest.raises(NotFound, match="BLOB_UNKNOWN"):
        real.blob(lab.host, "team/app", "sha256:" + "0" * 64)
    with pytest.raises(NotFound):
        real.manifest(lab.host, "team/app", "sha256:" + "1" * 64)


def test_arguments_are_validated_before_any_request() -> None:
    client, net, _, _ = scripted()
    with pytest.raises(BadReference, match="path component"):
        client.manifest("127.0.0.1:1", "team/../app", "v1")
    with pytest.raises(BadReference, match="64 hex digits"):
        client.blob("127.0.0.1:1", "team/app", "sha256:abc")  # e.g. from a hostile manifest
    with pytest.raises(ValueError, match="not allowed"):
        client.manifest("127.0.0.1:1", "team/app", "v1?x=1")
    with pytest.raises(RegistryError):
        client.referrers("127.0.0.1:1", "team/app", "v1")
    assert net.sent == []


PASSWORD = "correct-horse-PASSWORD-1"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    reg = start_registry(tmp_path_factory.mktemp("locked"), htpasswd={"alice": PASSWORD})
    try:
        yield reg, reg.push_image("private/app", "v1", content="secret image")
    finally:
        reg.stop()


def docker_config(tmp_path: Path, doc: Mapping[str, object], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_against_a_real_registry(
    locked: tuple[Registry, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, digest = locked
    caplog.set_level(logging.DEBUG, logger="pullgate")
    empty = DockerConfig(tmp_path / "missing.json")
    anonymous = RegistryClient(insecure=[reg.host], credentials=empty)
    with pytest.raises(Unauthorized) as caught:
        anonymous.manifest(reg.host, "private/app", "v1")
    reason = caught.value.reason
    assert "requires a username and password" in reason
    assert "pullgate-tests" in reason  # the realm
    assert f"no credentials were found for {reg.host}" in reason
    assert str(tmp_path / "missing.json") in reason

    good = DockerConfig(
        docker_config(tmp_path, {"auths": {reg.host: auth_entry("alice", PASSWORD)}})
    )
    client = RegistryClient(insecure=[reg.host], credentials=good)
    assert client.manifest(reg.host, "private/app", "v1").digest == digest
    assert client.resolve(reg.host, "private/app", "v1") == digest
    layer = client.manifest(reg.host, "private/app", digest).json()["layers"][0]["digest"]
    assert client.blob(reg.host, "private/app", layer)
    assert client.referrers(reg.host, "private/app", digest) == []

    wrong = {"auths": {f"http://{reg.host}": {"username": "alice", "password": "not-it-PW"}}}
    bad = RegistryClient(
        insecure=[reg.host], credentials=DockerConfig(docker_config(tmp_path, wrong, "w.json"))
    )
    with pytest.raises(Unauthorized) as caught:
        bad.manifest(reg.host, "private/app", "v1")
    assert "rejected" in caught.value.reason
    assert "(alice)" in caught.value.reason
    assert_no_secret(["not-it-PW", PASSWORD], caught.value, caplog, bad)


# --- a scripted network ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    timeout: float
    max_bytes: int

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


class ScriptedTransport:
    """The Transport double: answers from a list in order and records every request.

    Like Urllib3Transport it raises TooLarge for bodies over max_bytes and never follows
    redirects; an exception in the list is raised instead of answering.
    """

    def __init__(self, *answers: Reply | RegistryError) -> None:
        self.answers = list(answers)
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_bytes: int,
    ) -> Response:
        self.sent.append(Sent(method, url, dict(headers), timeout, max_bytes))
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        if isinstance(answer, RegistryError):
            raise answer
        if method != "HEAD" and len(answer.body) > max_bytes:
            raise TooLarge(f"{method} {url} is over the limit of {max_bytes} bytes")
        headers_out = {k.lower(): v for k, v in answer.headers.items()}
        return Response(answer.status, headers_out, b"" if method == "HEAD" else answer.body, url)

    def done(self) -> None:
        assert not self.answers, f"{len(self.answers)} answers were not asked for"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """A CredentialStore double that counts lookups."""

    def __init__(self, creds: Mapping[str, Credentials]) -> None:
        self.creds = dict(creds)
        self.asked: list[str] = []
        self.source = "the test store"

    def get(self, host: str) -> Credentials | None:
        self.asked.append(host)
        return self.creds.get(host)


REG = "registry.example.com"
REPO = "team/app"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
MANIFEST_DIGEST = sha256(MANIFEST)
BEARER = (
    'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
    'scope="repository:team/app:pull"'
)
ALICE = Credentials("alice", "alice-PASSWORD")


def ok_manifest(body: bytes = MANIFEST) -> Reply:
    return Reply(200, body, {"Content-Type": OCI_MANIFEST})


def scripted(
    *answers: Reply | RegistryError, **kwargs: Any
) -> tuple[RegistryClient, ScriptedTransport, list[float], Clock]:
    transport = ScriptedTransport(*answers)
    waits: list[float] = []
    clock = Clock()
    client = RegistryClient(transport, sleep=waits.append, clock=clock, **kwargs)
    return client, transport, waits, clock


def basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def test_urls_schemes_and_docker_hub() -> None:
    client, net, _, _ = scripted(
        ok_manifest(), ok_manifest(), ok_manifest(), insecure=["plain.local"]
    )
    client.manifest("docker.io", "library/nginx", "1.25")
    client.manifest("plain.local:5000", REPO, "v1")
    client.manifest(REG, REPO, MANIFEST_DIGEST)
    assert [s.url for s in net.sent] == [
        "https://registry-1.docker.io/v2/library/nginx/manifests/1.25",
        "http://plain.local:5000/v2/team/app/manifests/v1",
        f"https://{REG}/v2/team/app/manifests/{MANIFEST_DIGEST}",
    ]
    assert net.sent[0].headers["Accept"] == ", ".join(MANIFEST_TYPES)
    assert all(s.timeout == 5.0 and "Authorization" not in s.headers for s in net.sent)


def test_parse_challenges() -> None:
    value = (
        'Basic realm="simple", Bearer realm="https://auth.example.com/token?a=1,b=2",'
        'service="svc, with comma",scope="repository:a/b:pull,push", error="insufficient_scope",'
        " Negotiate abc==, Other k=v"
    )
    challenges = parse_challenges(value)
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate", "other"]
    assert challenges[0].params == {"realm": "simple"}
    assert challenges[1].params == {
        "realm": "https://auth.example.com/token?a=1,b=2",
        "service": "svc, with comma",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    assert challenges[2].params == {"": "abc=="}
    assert challenges[3].params == {"k": "v"}
    assert parse_challenges('BEARER Realm="x\\"y"')[0].params == {"realm": 'x"y'}
    assert parse_challenges("") == []


def test_bearer_token_flow_and_cache() -> None:
    store = Store({REG: ALICE})
    token = json.dumps({"token": "tok-1", "expires_in": 300}).encode()
    client, net, _, clock = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, token),
        ok_manifest(),
        ok_manifest(),  # second call: cached token sent at once
        credentials=store,
    )
    assert client.manifest(REG, REPO, "v1").digest == MANIFEST_DIGEST
    first, token_request, retried = net.sent[:3]
    assert "Authorization" not in first.headers
    assert token_request.host == "auth.example.com"
    assert token_request.query == {
        "service": ["registry.example.com"],
        "scope": ["repository:team/app:pull"],
    }
    assert token_request.headers["Authorization"] == basic(ALICE)
    assert retried.headers["Authorization"] == "Bearer tok-1"
    clock.now += 200
    client.manifest(REG, REPO, "v1")
    assert net.sent[3].headers["Authorization"] == "Bearer tok-1"
    assert store.asked == [REG]
    net.done()

    # After expires_in the token is not sent; the next challenge fetches a new one.
    clock.now += 200
    net.answers = [
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, json.dumps({"access_token": "tok-2"}).encode()),
        ok_manifest(),
    ]
    client.manifest(REG, REPO, "v1")
    assert "Authorization" not in net.sent[4].headers
    assert net.sent[6].headers["Authorization"] == "Bearer tok-2"
    # access_token without expires_in: cached for the default 60 s.
    clock.now += 30
    net.answers = [ok_manifest()]
    client.manifest(REG, REPO, "v1")
    assert net.sent[7].headers["Authorization"] == "Bearer tok-2"
    clock.now += 40
    net.answers = [
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, b'{"token": "t3"}'),
        ok_manifest(),
    ]
    client.manifest(REG, REPO, "v1")
    assert "Authorization" not in net.sent[8].headers
    net.done()


def test_bearer_without_scope_uses_the_repository_pull_scope_and_tokens_are_per_scope() -> None:
    challenge = 'Bearer realm="https://auth.example.com/token"'
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": challenge}),
        Reply(200, b'{"token": "for-app"}'),
        ok_manifest(),
        Reply(401, b"", {"WWW-Authenticate": challenge}),  # another repository: another scope
        Reply(200, b'{"token": "for-other"}'),
        ok_manifest(),
    )
    client.manifest(REG, REPO, "v1")
    client.manifest(REG, "team/other", "v1")
    assert net.sent[1].query == {"scope": ["repository:team/app:pull"]}
    assert "Authorization" not in net.sent[1].headers  # no credential store: anonymous token
    assert "Authorization" not in net.sent[3].headers
    assert net.sent[4].query == {"scope": ["repository:team/other:pull"]}
    assert net.sent[5].headers["Authorization"] == "Bearer for-other"
    net.done()


def test_rejected_token_is_replaced_once_then_unauthorized() -> None:
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, b'{"token": "stale"}'),
        ok_manifest(),
        Reply(401, b"", {"WWW-Authenticate": BEARER + ',error="invalid_token"'}),
        Reply(200, b'{"token": "fresh"}'),
        Reply(401, b'{"errors":[{"code":"DENIED","message":"no"}]}', {"WWW-Authenticate": BEARER}),
        credentials=Store({REG: ALICE}),
    )
    client.manifest(REG, REPO, "v1")
    with pytest.raises(Unauthorized) as caught:
        client.manifest(REG, REPO, "v1")
    assert net.sent[3].headers["Authorization"] == "Bearer stale"
    assert net.sent[5].headers["Authorization"] == "Bearer fresh"
    assert "rejected" in caught.value.reason and "DENIED" in caught.value.reason
    assert "fresh" not in caught.value.reason and "stale" not in caught.value.reason
    net.done()


def test_token_service_refusal_says_whether_credentials_were_found() -> None:
    client, _, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}), Reply(401), credentials=Store({})
    )
    with pytest.raises(Unauthorized) as caught:
        client.manifest(REG, REPO, "v1")
    assert "auth.example.com" in caught.value.reason
    assert f"no credentials were found for {REG} in the test store" in caught.value.reason

    client, _, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}), Reply(403), credentials=Store({REG: ALICE})
    )
    with pytest.raises(
        Unauthorized, match=r"credentials for registry.example.com \(alice\) were sent"
    ):
        client.manifest(REG, REPO, "v1")


def test_basic_challenge_without_credentials_and_403() -> None:
    client, _, _, _ = scripted(Reply(401, b"", {"WWW-Authenticate": 'Basic realm="corp"'}))
    with pytest.raises(Unauthorized, match="no credential store is configured"):
        client.manifest(REG, REPO, "v1")
    client, _, _, _ = scripted(Reply(403), credentials=Store({}))
    with pytest.raises(Unauthorized) as caught:
        client.manifest(REG, REPO, "v1")
    assert "denied pull access to team/app (403)" in caught.value.reason
    assert "no credentials were found" in caught.value.reason
    client, _, _, _ = scripted(Reply(401))
    with pytest.raises(Unauthorized, match="without a WWW-Authenticate"):
        client.manifest(REG, REPO, "v1")


def test_basic_credentials_are_cached_per_host() -> None:
    store = Store({REG: ALICE})
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": 'Basic realm="corp"'}),
        ok_manifest(),
        ok_manifest(),
        credentials=store,
    )
    client.manifest(REG, REPO, "v1")
    client.manifest(REG, "team/other", "v1")
    assert [s.headers.get("Authorization") for s in net.sent] == [None, basic(ALICE), basic(ALICE)]
    assert store.asked == [REG]


def test_credentials_never_go_over_plain_http_to_other_hosts() -> None:
    # The token realm is plain HTTP on a host that is neither insecure nor loopback.
    challenge = 'Bearer realm="http://auth.example.com/token",service="s"'
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": challenge}),
        Reply(200, b'{"token": "t"}'),
        ok_manifest(),
        credentials=Store({REG: ALICE}),
    )
    client.manifest(REG, REPO, "v1")
    assert "Authorization" not in net.sent[1].headers
    # ...but loopback and listed insecure hosts may get them.
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": 'Basic realm="r"'}),
        ok_manifest(),
        credentials=Store({"127.0.0.1:5000": ALICE}),
    )
    client.manifest("127.0.0.1:5000", REPO, "v1")
    assert net.sent[0].url.startswith("https://")  # not insecure: HTTPS even on loopback
    assert net.sent[1].headers["Authorization"] == basic(ALICE)


def test_retry_after_seconds_and_http_date() -> None:
    soon = email.utils.formatdate(time.time() + 100, usegmt=True)
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    client, net, waits, _ = scripted(
        Reply(429, b"", {"Retry-After": "3"}),
        Reply(429, b"", {"Retry-After": soon}),
        ok_manifest(),
        Reply(429, b"", {"Retry-After": past}),
        Reply(429, b"", {"Retry-After": "soon-ish"}),
        ok_manifest(),
        timeout=4.0,
    )
    client.manifest(REG, REPO, "v1")
    client.manifest(REG, REPO, "v1")
    # 3 s as asked; 100 s capped at the timeout; a past date is now; garbage is the backoff.
    assert waits == [3.0, 4.0, 0.0, 1.0]
    net.done()


def test_429_without_retry_after_backs_off() -> None:
    client, _, waits, _ = scripted(Reply(429), Reply(429), ok_manifest())
    client.manifest(REG, REPO, "v1")
    assert waits == [0.5, 1.0]


def test_gateway_errors_are_retried_then_succeed() -> None:
    client, net, waits, _ = scripted(Reply(500), Reply(502), Reply(503), ok_manifest(), retries=3)
    assert client.manifest(REG, REPO, "v1").digest == MANIFEST_DIGEST
    assert waits == [0.5, 1.0, 2.0]
    assert len(net.sent) == 4


def test_retries_exhausted_is_a_clear_error() -> None:
    error = b'{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}'
    client, _, waits, _ = scripted(Reply(503, error), Reply(504), Reply(503, error))
    with pytest.raises(BadResponse) as caught:
        client.manifest(REG, REPO, "v1")
    assert "answered 503: UNAVAILABLE maintenance to all 3 attempts" in caught.value.reason
    assert REG in caught.value.reason and "try again later" in caught.value.reason
    assert len(waits) == 2
    client, _, _, _ = scripted(Reply(429), retries=0)
    with pytest.raises(BadResponse, match="rate-limiting"):
        client.manifest(REG, REPO, "v1")


def test_other_statuses_are_not_retried() -> None:
    client, net, waits, _ = scripted(Reply(418, b"teapot"))
    with pytest.raises(BadResponse, match="unexpected HTTP status 418"):
        client.manifest(REG, REPO, "v1")
    assert waits == [] and len(net.sent) == 1


BLOB = b"layer bytes"
BLOB_DIGEST = sha256(BLOB)


def test_redirects_across_hosts_drop_authorization() -> None:
    storage = "https://storage.example.net/blobs/abc?X-Amz-Signature=presigned-SECRET"
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": 'Basic realm="r"'}),
        Reply(307, b"", {"Location": f"/v2/{REPO}/blobs/moved"}),  # same host: keeps it
        Reply(302, b"", {"Location": storage}),
        Reply(200, BLOB),
        credentials=Store({REG: ALICE}),
    )
    assert client.blob(REG, REPO, BLOB_DIGEST) == BLOB
    assert net.sent[1].headers["Authorization"] == basic(ALICE)
    assert net.sent[2].url == f"https://{REG}/v2/{REPO}/blobs/moved"
    assert net.sent[2].headers["Authorization"] == basic(ALICE)
    assert net.sent[3].url == storage
    assert "Authorization" not in net.sent[3].headers


def test_authorization_stays_dropped_after_leaving_the_host() -> None:
    client, net, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": 'Basic realm="r"'}),
        Reply(302, b"", {"Location": "https://cdn.example.net/x"}),
        Reply(302, b"", {"Location": f"https://{REG}/v2/{REPO}/blobs/back"}),
        Reply(200, BLOB),
        credentials=Store({REG: ALICE}),
    )
    client.blob(REG, REPO, BLOB_DIGEST)
    assert [("Authorization" in s.headers) for s in net.sent] == [False, True, False, False]


def test_redirect_loop_and_too_many_redirects() -> None:
    a, b = "https://cdn.example.net/a", "https://cdn.example.net/b?sig=SECRET"
    client, _, _, _ = scripted(
        Reply(302, b"", {"Location": a}),
        Reply(302, b"", {"Location": b}),
        Reply(302, b"", {"Location": a}),
    )
    with pytest.raises(BadResponse, match="redirect loop") as caught:
        client.blob(REG, REPO, BLOB_DIGEST)
    assert "SECRET" not in caught.value.reason  # query strings (pre-signed URLs) are not shown
    hops = [Reply(302, b"", {"Location": f"https://cdn.example.net/{i}"}) for i in range(6)]
    client, net, _, _ = scripted(*hops)
    with pytest.raises(BadResponse, match="more than 5 redirects"):
        client.blob(REG, REPO, BLOB_DIGEST)
    assert len(net.sent) == 6
    client, _, _, _ = scripted(Reply(301))
    with pytest.raises(BadResponse, match="without a Location"):
        client.blob(REG, REPO, BLOB_DIGEST)


def test_oversized_manifest_and_blob() -> None:
    client, net, _, _ = scripted(ok_manifest(b"{" + b" " * 200 + b"}"), max_manifest_bytes=100)
    with pytest.raises(TooLarge) as caught:
        client.manifest(REG, REPO, "v1")
    assert "max_manifest_bytes=100 bytes" in caught.value.reason
    assert net.sent[0].max_bytes == 100
    client, net, _, _ = scripted(Reply(200, b"x" * 50), Reply(200, b"x" * 50), max_blob_bytes=20)
    with pytest.raises(TooLarge, match="max_blob_bytes=20 bytes"):
        client.blob(REG, REPO, sha256(b"x" * 50))
    with pytest.raises(TooLarge, match="max_bytes=10 bytes"):
        client.blob(REG, REPO, sha256(b"x" * 50), max_bytes=10)
    assert [s.max_bytes for s in net.sent] == [20, 10]


def test_digest_mismatch() -> None:
    client, _, _, _ = scripted(Reply(200, b"tampered"), ok_manifest(b'{"tampered": 1}'))
    with pytest.raises(DigestMismatch) as caught:
        client.blob(REG, REPO, BLOB_DIGEST)
    assert f"{REG}/{REPO}@{BLOB_DIGEST}" in caught.value.reason
    assert sha256(b"tampered") in caught.value.reason
    with pytest.raises(DigestMismatch):
        client.manifest(REG, REPO, MANIFEST_DIGEST)


def test_manifest_shape_errors() -> None:
    client, _, _, _ = scripted(
        ok_manifest(b"<html>proxy login</html>"),
        ok_manifest(b"[1, 2]"),
        Reply(200, b'{"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"}'),
        Reply(200, b'{"schemaVersion": 2}'),
    )
    with pytest.raises(BadResponse, match="is not JSON"):
        client.manifest(REG, REPO, "v1")
    with pytest.raises(BadResponse, match="not an object"):
        client.manifest(REG, REPO, "v1")
    with pytest.raises(BadResponse, match="prettyjws"):
        client.manifest(REG, REPO, "v1")
    with pytest.raises(BadResponse, match="neither a mediaType nor a Content-Type"):
        client.manifest(REG, REPO, "v1")
    assert Manifest(OCI_MANIFEST, sha256(b"[]"), b"[]").data == b"[]"
    with pytest.raises(BadResponse):
        Manifest(OCI_MANIFEST, sha256(b"[]"), b"[]").json()


def test_resolve_prefers_head_and_falls_back_to_the_body_hash() -> None:
    client, net, _, _ = scripted(Reply(200, b"", {"Docker-Content-Digest": MANIFEST_DIGEST}))
    assert client.resolve(REG, REPO, "v1") == MANIFEST_DIGEST
    assert [s.method for s in net.sent] == ["HEAD"]
    # HEAD not allowed, and the GET's header lies: the hash of the body wins.
    lie = "sha256:" + "f" * 64
    client, net, _, _ = scripted(
        Reply(405),
        Reply(200, MANIFEST, {"Docker-Content-Digest": lie, "Content-Type": OCI_MANIFEST}),
    )
    assert client.resolve(REG, REPO, "v1") == MANIFEST_DIGEST
    assert [s.method for s in net.sent] == ["HEAD", "GET"]
    # A HEAD digest that is not sha256 is not used either.
    client, net, _, _ = scripted(
        Reply(200, b"", {"Docker-Content-Digest": "sha512:" + "a" * 128}), ok_manifest()
    )
    assert client.resolve(REG, REPO, "v1") == MANIFEST_DIGEST


def test_referrers_api_with_filter_and_pages() -> None:
    def desc(n: int, kind: str) -> dict[str, object]:
        return {
            "mediaType": OCI_MANIFEST,
            "digest": "sha256:" + str(n) * 64,
            "size": 1,
            "artifactType": kind,
        }

    page1 = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [desc(1, SIG_TYPE), desc(2, SBOM_TYPE)],
    }
    page2 = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(3, SIG_TYPE)]}
    link = f'</v2/{REPO}/referrers/{MANIFEST_DIGEST}?artifactType=x&last=2>; rel="next"'
    client, net, _, _ = scripted(
        Reply(200, json.dumps(page1).encode(), {"Link": link}),
        Reply(200, json.dumps(page2).encode()),
    )
    found = client.referrers(REG, REPO, MANIFEST_DIGEST, artifact_type=SIG_TYPE)
    assert [d["digest"][-1] for d in found] == ["1", "3"]
    assert (
        net.sent[0].url
        == f"https://{REG}/v2/{REPO}/referrers/{MANIFEST_DIGEST}?artifactType=application%2Fvnd.example.signature"
    )
    assert net.sent[0].headers["Accept"] == OCI_INDEX
    assert net.sent[1].query["last"] == ["2"]


@pytest.mark.parametrize("status", [400, 404, 405, 501])
def test_referrers_fall_back_to_the_tag_schema(status: int) -> None:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    client, net, _, _ = scripted(Reply(status), Reply(200, json.dumps(index).encode()))
    assert client.referrers(REG, REPO, MANIFEST_DIGEST) == []
    assert net.sent[1].url.endswith("/manifests/sha256-" + MANIFEST_DIGEST.removeprefix("sha256:"))
    client, _, _, _ = scripted(Reply(status), Reply(404))
    assert client.referrers(REG, REPO, MANIFEST_DIGEST) == []


def test_referrers_tag_holding_something_else_is_an_error() -> None:
    client, _, _, _ = scripted(Reply(404), ok_manifest())
    with pytest.raises(BadResponse, match="not the OCI index"):
        client.referrers(REG, REPO, MANIFEST_DIGEST)
    client, _, _, _ = scripted(Reply(200, b'{"manifests": {"not": "a list"}}'))
    with pytest.raises(BadResponse, match="not a list of descriptor"):
        client.referrers(REG, REPO, MANIFEST_DIGEST)


# --- real sockets ------------------------------------------------------------------------------


def test_connection_refused_is_unreachable() -> None:
    host = f"127.0.0.1:{free_port()}"  # bound and closed again: nobody listens
    client = RegistryClient(insecure=[host], timeout=1.0)
    with pytest.raises(Unreachable) as caught:
        client.manifest(host, REPO, "v1")
    assert "connection refused" in caught.value.reason
    assert host in caught.value.reason


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    with silent(None) as address:
        yield address


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that sends canned bytes, one answer per request, and
    counts the connections it accepted (keep-alive is honoured until the answers run out).
    An empty answer closes the connection without answering."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(5)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buffer = b""
                while self.answers:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    buffer = buffer.split(b"\r\n\r\n", 1)[1]
                    answer = self.answers.pop(0)
                    if not answer:
                        break
                    try:
                        conn.sendall(answer)
                    except OSError:
                        break

    def close(self) -> None:
        self.answers.clear()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        self.sock.close()
        self.thread.join(5)


def test_real_transport_streams_bounded_bodies_and_reuses_connections() -> None:
    chunk = b"x" * 4096
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(64)) + b"0\r\n\r\n"
    server = RawServer(
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n"
        b'WWW-Authenticate: Basic realm="a"\r\nWWW-Authenticate: Bearer realm="b"\r\n\r\nno',
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: 1\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
    )
    try:
        transport = Urllib3Transport()
        url = f"http://{server.host}/v2/"
        first = transport.request("GET", url, {}, timeout=2, max_bytes=100)
        assert first.status == 401 and first.body == b"no"
        assert first.headers["www-authenticate"] == 'Basic realm="a", Bearer realm="b"'
        second = transport.request("GET", url, {}, timeout=2, max_bytes=100)
        assert (second.status, second.body, second.headers["x-thing"]) == (200, b"hello", "1")
        assert server.connections == 1  # kept alive and reused
        with pytest.raises(TooLarge, match="over the limit of 10000 bytes"):
            transport.request("GET", url, {}, timeout=2, max_bytes=10_000)  # no Content-Length
    finally:
        server.close()


def test_real_transport_resends_once_when_a_kept_alive_connection_drops() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer(ok, b"", ok, b"", b"")
    try:
        transport = Urllib3Transport()
        url = f"http://{server.host}/v2/"
        assert transport.request("GET", url, {}, timeout=2, max_bytes=100).body == b"ok"
        # The server closes the pooled connection as the request arrives: sent again, answered.
        assert transport.request("GET", url, {}, timeout=2, max_bytes=100).body == b"ok"
        assert server.connections == 2
        # A server that always hangs up is unreachable after the second try.
        with pytest.raises(Unreachable, match=r"connection to 127\.0\.0\.1:\d+ broke"):
            transport.request("GET", url, {}, timeout=2, max_bytes=100)
    finally:
        server.close()


def test_read_timeout_is_unreachable_naming_the_timeout(silent_server: str) -> None:
    client = RegistryClient(Urllib3Transport(), insecure=[silent_server], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        client.manifest(silent_server, REPO, "v1")
    assert time.monotonic() - started < 2
    assert "read timeout 0.3 s" in caught.value.reason
    assert silent_server in caught.value.reason


# --- docker config.json ------------------------------------------------------------------------


def test_auths_in_all_three_forms(tmp_path: Path) -> None:
    config = DockerConfig(
        docker_config(
            tmp_path,
            {
                "auths": {
                    "one.example.com": auth_entry("u1", "p1:with:colons"),
                    "https://two.example.com": {"username": "u2", "password": "p2"},
                    "https://three.example.com/v1/": {"identitytoken": "refresh-3"},
                    "Four.Example.com:5000": {},
                }
            },
        )
    )
    assert config.get("one.example.com") == Credentials("u1", "p1:with:colons")
    assert config.get("two.example.com") == Credentials("u2", "p2")
    assert config.get("three.example.com") == Credentials("<token>", "refresh-3")
    assert config.get("four.example.com:5000") is None
    assert config.get("unknown.example.com") is None
    assert "p1" not in repr(config.get("one.example.com"))


@pytest.mark.parametrize(
    "key", ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
)
def test_docker_hub_aliases(tmp_path: Path, key: str) -> None:
    config = DockerConfig(docker_config(tmp_path, {"auths": {key: auth_entry("hubuser", "hubpw")}}))
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert config.get(host) == Credentials("hubuser", "hubpw")


def test_missing_and_broken_configs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DockerConfig(tmp_path / "absent.json").get("x.example.com") is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"auths": {"x.example.com": {"auth": "c2VjcmV0LXZhbHVl"}')  # truncated
    with caplog.at_level(logging.WARNING, logger="pullgate"):
        assert DockerConfig(broken).get("x.example.com") is None
    assert "not valid JSON" in caplog.text and "c2VjcmV0" not in caplog.text
    bad_auth = docker_config(
        tmp_path, {"auths": {"x.example.com": {"auth": "bm9jb2xvbg=="}}}, "b.json"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pullgate"):
        assert DockerConfig(bad_auth).get("x.example.com") is None
    assert "not base64 of 'user:password'" in caplog.text and "bm9jb2xvbg" not in caplog.text
    # `~` is expanded, and the file is re-read when it changes.
    monkeypatch.setenv("HOME", str(tmp_path))
    home = DockerConfig("~/config.json")
    assert home.path == tmp_path / "config.json"
    docker_config(tmp_path, {"auths": {"x.example.com": auth_entry("a", "1")}})
    assert home.get("x.example.com") == Credentials("a", "1")
    docker_config(tmp_path, {"auths": {"x.example.com": auth_entry("bb", "22")}})
    assert home.get("x.example.com") == Credentials("bb", "22")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert DockerConfig().path == tmp_path / "config.json"


def write_helper(bin_dir: Path, name: str, script: str) -> Path:
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH for fake docker-credential-* programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


ECHO_HELPER = """\
echo "$@" > "$(dirname "$0")/$(basename "$0").argv"
read -r s
printf '{"ServerURL": "%s", "Username": "%s", "Secret": "secret-for-%s"}' "$s" "${0##*-}" "$s"
"""


def test_cred_helpers_and_creds_store(tmp_path: Path, helpers: Path) -> None:
    write_helper(helpers, "pass", ECHO_HELPER)
    write_helper(helpers, "desktop", ECHO_HELPER)
    config = DockerConfig(
        docker_config(
            tmp_path,
            {
                "auths": {"ghcr.io": auth_entry("file-user", "file-pw")},
                "credHelpers": {"ghcr.io": "pass", "https://index.docker.io/v1/": "pass"},
                "credsStore": "desktop",
            },
        )
    )
    assert config.get("ghcr.io") == Credentials("pass", "secret-for-ghcr.io")
    assert (helpers / "docker-credential-pass.argv").read_text().strip() == "get"
    # Docker Hub is asked for under docker's own name for it.
    assert config.get("docker.io") == Credentials("pass", "secret-for-https://index.docker.io/v1/")
    assert config.get("quay.io") == Credentials("desktop", "secret-for-quay.io")


def test_helper_without_credentials_falls_back_to_auths(
    tmp_path: Path, helpers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_helper(helpers, "empty", 'echo "credentials not found in native keychain"\nexit 1\n')
    config = DockerConfig(
        docker_config(
            tmp_path,
            {"auths": {"ghcr.io": auth_entry("file-user", "file-pw")}, "credsStore": "empty"},
        )
    )
    with caplog.at_level(logging.WARNING, logger="pullgate"):
        assert config.get("ghcr.io") == Credentials("file-user", "file-pw")
        assert config.get("quay.io") is None
    assert caplog.records == []  # "not found" is normal, not worth a warning


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            'echo "leaked-HELPER-secret"\necho "more leaked-HELPER-secret" >&2\nexit 3\n',
            "exit status 3",
        ),
        ('echo "{not json leaked-HELPER-secret"\n', "without the JSON object"),
        ('echo \'{"Username": "u"}\'\n', "without the JSON object"),
        ("sleep 10\necho leaked-HELPER-secret\n", "did not answer within 0.3 s"),
    ],
    ids=["fails", "garbage", "no-secret", "hangs"],
)
def test_failing_helper_is_no_credentials_with_a_warning(
    tmp_path: Path, helpers: Path, caplog: pytest.LogCaptureFixture, script: str, expected: str
) -> None:
    write_helper(helpers, "broken", script)
    config = DockerConfig(
        docker_config(tmp_path, {"credHelpers": {"ghcr.io": "broken"}}), helper_timeout=0.3
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pullgate"):
        assert config.get("ghcr.io") is None
    assert time.monotonic() - started < 3
    assert expected in caplog.text
    assert "docker-credential-broken" in caplog.text
    assert "leaked-HELPER-secret" not in caplog.text


def test_missing_helper_and_bad_helper_names(
    tmp_path: Path, helpers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = DockerConfig(
        docker_config(tmp_path, {"credHelpers": {"ghcr.io": "absent", "quay.io": "../../bin/sh"}})
    )
    with caplog.at_level(logging.WARNING, logger="pullgate"):
        assert config.get("ghcr.io") is None
        assert config.get("quay.io") is None
    assert "docker-credential-absent" in caplog.text and "not on PATH" in caplog.text
    assert "not a valid helper name" in caplog.text


# --- secrets stay secret -----------------------------------------------------------------------


def assert_no_secret(
    secrets: list[str], error: BaseException, caplog: pytest.LogCaptureFixture, *objects: object
) -> None:
    """No secret, nor its base64 in a Basic header, in the error, its chain, logs or reprs."""
    needles = list(secrets)
    for secret in secrets:
        for user in ("alice", "<token>"):
            needles.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    texts = [str(error), repr(error), repr(error.args), getattr(error, "reason", "")]
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(o) for o in objects]
    for text in texts:
        for needle in needles:
            assert needle not in text, f"a secret leaked into: {text[:200]}"


def test_no_secret_in_errors_reprs_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pullgate")
    password, token = "pw-TOPSECRET-1", "tok-TOPSECRET-2"
    config = DockerConfig(docker_config(tmp_path, {"auths": {REG: auth_entry("alice", password)}}))
    client, _, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, json.dumps({"token": token}).encode()),
        Reply(401, b"", {"WWW-Authenticate": BEARER}),  # token rejected; a fresh one...
        Reply(200, json.dumps({"token": token}).encode()),
        Reply(401, json.dumps({"token": token}).encode(), {"WWW-Authenticate": BEARER}),
        credentials=config,
    )
    with pytest.raises(Unauthorized) as caught:
        client.manifest(REG, REPO, "v1")
    creds = config.get(REG)
    assert creds is not None and creds.password == password
    responses = [
        Response(200, {}, json.dumps({"token": token}).encode(), f"https://{REG}/?sig={token}")
    ]
    assert_no_secret([password, token], caught.value, caplog, client, config, creds, *responses)
    # A token with a newline would be a header injection; its text never reaches the error.
    client, _, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": BEARER}),
        Reply(200, json.dumps({"token": token + "\r\nX: y"}).encode()),
        credentials=config,
    )
    with pytest.raises(BadResponse, match="no usable 'token'") as bad:
        client.manifest(REG, REPO, "v1")
    assert_no_secret([password, token], bad.value, caplog)


def test_a_credential_store_that_raises_is_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get(self, host: str) -> Credentials | None:
            raise RuntimeError("vault says pw-TOPSECRET-3")

    client, _, _, _ = scripted(
        Reply(401, b"", {"WWW-Authenticate": 'Basic realm="r"'}), credentials=Broken()
    )
    with caplog.at_level(logging.WARNING, logger="pullgate"), pytest.raises(Unauthorized):
        client.manifest(REG, REPO, "v1")
    assert "RuntimeError" in caplog.text and "TOPSECRET" not in caplog.text


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RegistryClient(ScriptedTransport(), timeout=0)
    with pytest.raises(ValueError, match="retries"):
        RegistryClient(ScriptedTransport(), retries=-1)
