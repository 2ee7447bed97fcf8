"""Tests for pullgate.reference: parsing and normalising docker image references."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple

import pytest

# isort: split
from pullgate.reference import (
    DIGEST_HEX_LENGTHS,
    ImageRef,
    InvalidReference,
    parse_digest,
    parse_reference,
)

HEX256 = hashlib.sha256(b"pullgate reference test").hexdigest()
HEX384 = hashlib.sha384(b"pullgate reference test").hexdigest()
HEX512 = hashlib.sha512(b"pullgate reference test").hexdigest()
D256 = f"sha256:{HEX256}"
D384 = f"sha384:{HEX384}"
D512 = f"sha512:{HEX512}"
# Real-looking digests (fixed hex strings, not claimed to be any image's actual digest).
CILIUM = "sha256:f8cba8e4d9b2a4f1d7c3a6e5b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1"
PAUSE = "sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"
TAG128 = "v" + "1" * 127
NAME_MAX = "a" * (255 - len("ghcr.io/"))


class Valid(NamedTuple):
    text: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None
    effective_tag: str
    canonical: str


VALID: list[tuple[str, Valid]] = [
    # Docker Hub: default registry, library/ namespace, legacy domains.
    ("bare", Valid("nginx", "docker.io", "library/nginx", None, None, "latest",
                   "docker.io/library/nginx")),
    ("bare-tag", Valid("nginx:1.25", "docker.io", "library/nginx", "1.25", None, "1.25",
                       "docker.io/library/nginx:1.25")),
    ("library", Valid("library/nginx", "docker.io", "library/nginx", None, None, "latest",
                      "docker.io/library/nginx")),
    ("fully-qualified", Valid("docker.io/library/nginx:latest", "docker.io", "library/nginx",
                              "latest", None, "latest", "docker.io/library/nginx:latest")),
    ("hub-no-library", Valid("docker.io/nginx", "docker.io", "library/nginx", None, None,
                             "latest", "docker.io/library/nginx")),
    ("index-docker-io", Valid("index.docker.io/library/busybox", "docker.io", "library/busybox",
                              None, None, "latest", "docker.io/library/busybox")),
    ("index-docker-io-short", Valid("index.docker.io/busybox:1.36", "docker.io",
                                    "library/busybox", "1.36", None, "1.36",
                                    "docker.io/library/busybox:1.36")),
    ("registry-1", Valid("registry-1.docker.io/bitnami/redis", "docker.io", "bitnami/redis",
                         None, None, "latest", "docker.io/bitnami/redis")),
    ("hub-upper-host", Valid("Docker.IO/nginx", "docker.io", "library/nginx", None, None,
                             "latest", "docker.io/library/nginx")),
    ("namespace", Valid("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None, "7.2",
                        "docker.io/bitnami/redis:7.2")),
    ("hub-nested", Valid("grafana/grafana-oss:10.4.2", "docker.io", "grafana/grafana-oss",
                         "10.4.2", None, "10.4.2", "docker.io/grafana/grafana-oss:10.4.2")),
    ("hub-alpine", Valid("alpine:3.20.1", "docker.io", "library/alpine", "3.20.1", None,
                         "3.20.1", "docker.io/library/alpine:3.20.1")),
    ("hub-postgres", Valid("postgres:16-alpine", "docker.io", "library/postgres", "16-alpine",
                           None, "16-alpine", "docker.io/library/postgres:16-alpine")),
    # Other registries.
    ("ghcr", Valid("ghcr.io/fluxcd/source-controller:v1.3.0", "ghcr.io",
                   "fluxcd/source-controller", "v1.3.0", None, "v1.3.0",
                   "ghcr.io/fluxcd/source-controller:v1.3.0")),
    ("k8s-pause", Valid("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", None,
                        "3.9", "registry.k8s.io/pause:3.9")),
    ("k8s-apiserver", Valid("registry.k8s.io/kube-apiserver:v1.30.2", "registry.k8s.io",
                            "kube-apiserver", "v1.30.2", None, "v1.30.2",
                            "registry.k8s.io/kube-apiserver:v1.30.2")),
    ("k8s-pause-pinned", Valid(f"registry.k8s.io/pause:3.9@{PAUSE}", "registry.k8s.io", "pause",
                               "3.9", PAUSE, "3.9", f"registry.k8s.io/pause:3.9@{PAUSE}")),
    ("quay-tag-digest", Valid(f"quay.io/cilium/cilium:v1.15.6@{CILIUM}", "quay.io",
                              "cilium/cilium", "v1.15.6", CILIUM, "v1.15.6",
                              f"quay.io/cilium/cilium:v1.15.6@{CILIUM}")),
    ("distroless", Valid("gcr.io/distroless/static-debian12:nonroot", "gcr.io",
                         "distroless/static-debian12", "nonroot", None, "nonroot",
                         "gcr.io/distroless/static-debian12:nonroot")),
    ("mcr", Valid("mcr.microsoft.com/dotnet/aspnet:8.0", "mcr.microsoft.com", "dotnet/aspnet",
                  "8.0", None, "8.0", "mcr.microsoft.com/dotnet/aspnet:8.0")),
    ("public-ecr", Valid("public.ecr.aws/eks-distro/kubernetes/pause:3.9", "public.ecr.aws",
                         "eks-distro/kubernetes/pause", "3.9", None, "3.9",
                         "public.ecr.aws/eks-distro/kubernetes/pause:3.9")),
    ("private-ecr", Valid("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0",
                          "123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/app", "1.0",
                          None, "1.0",
                          "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0")),
    ("acr", Valid("myregistry.azurecr.io/samples/nginx", "myregistry.azurecr.io",
                  "samples/nginx", None, None, "latest", "myregistry.azurecr.io/samples/nginx")),
    ("artifact-registry", Valid("us-docker.pkg.dev/project/repo/image:tag", "us-docker.pkg.dev",
                                "project/repo/image", "tag", None, "tag",
                                "us-docker.pkg.dev/project/repo/image:tag")),
    ("gitlab", Valid("registry.gitlab.com/group/sub-group/project/image:main",
                     "registry.gitlab.com", "group/sub-group/project/image", "main", None,
                     "main", "registry.gitlab.com/group/sub-group/project/image:main")),
    ("nvcr", Valid("nvcr.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04", "nvcr.io", "nvidia/cuda",
                   "12.4.1-runtime-ubuntu22.04", None, "12.4.1-runtime-ubuntu22.04",
                   "nvcr.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04")),
    ("registry-upper", Valid("Registry.Example.COM/app", "registry.example.com", "app", None,
                             None, "latest", "registry.example.com/app")),
    ("registry-upper-tag", Valid("GHCR.io/acme/app:V1", "ghcr.io", "acme/app", "V1", None, "V1",
                                 "ghcr.io/acme/app:V1")),
    # Hosts: localhost, ports, IP addresses.
    ("localhost-port", Valid("localhost:5000/test/app", "localhost:5000", "test/app", None, None,
                             "latest", "localhost:5000/test/app")),
    ("localhost", Valid("localhost/app:dev", "localhost", "app", "dev", None, "dev",
                        "localhost/app:dev")),
    ("localhost-upper", Valid("LocalHost/app", "localhost", "app", None, None, "latest",
                              "localhost/app")),
    ("ipv4-port", Valid("127.0.0.1:5000/x:y", "127.0.0.1:5000", "x", "y", None, "y",
                        "127.0.0.1:5000/x:y")),
    ("ipv6-port", Valid("[::1]:5000/x", "[::1]:5000", "x", None, None, "latest",
                        "[::1]:5000/x")),
    ("ipv6-upper", Valid("[FE80::1]/x:1", "[fe80::1]", "x", "1", None, "1", "[fe80::1]/x:1")),
    ("single-label-port", Valid("registry:5000/app", "registry:5000", "app", None, None,
                                "latest", "registry:5000/app")),
    ("port-on-hub-host", Valid("docker.io:443/acme/app", "docker.io:443", "acme/app", None,
                               None, "latest", "docker.io:443/acme/app")),
    # No '/': "host:5000" is a Docker Hub image with a tag, as in distribution.
    ("bare-name-numeric-tag", Valid("localhost:5000", "docker.io", "library/localhost", "5000",
                                    None, "5000", "docker.io/library/localhost:5000")),
    # Path component separators.
    ("double-underscore", Valid("acme/my__app", "docker.io", "acme/my__app", None, None,
                                "latest", "docker.io/acme/my__app")),
    ("underscore", Valid("acme/my_app", "docker.io", "acme/my_app", None, None, "latest",
                         "docker.io/acme/my_app")),
    ("dashes", Valid("ghcr.io/acme/my--app-x", "ghcr.io", "acme/my--app-x", None, None, "latest",
                     "ghcr.io/acme/my--app-x")),
    ("dot-in-path", Valid("ghcr.io/acme/app.v2", "ghcr.io", "acme/app.v2", None, None, "latest",
                          "ghcr.io/acme/app.v2")),
    ("digits", Valid("ghcr.io/0/1", "ghcr.io", "0/1", None, None, "latest", "ghcr.io/0/1")),
    ("hex-with-namespace", Valid(f"acme/{HEX256}", "docker.io", f"acme/{HEX256}", None, None,
                                 "latest", f"docker.io/acme/{HEX256}")),
    ("hex-with-registry", Valid(f"ghcr.io/{HEX256}", "ghcr.io", HEX256, None, None, "latest",
                                f"ghcr.io/{HEX256}")),
    ("name-255", Valid(f"ghcr.io/{NAME_MAX}", "ghcr.io", NAME_MAX, None, None, "latest",
                       f"ghcr.io/{NAME_MAX}")),
    # Tags.
    ("tag-separators", Valid("x:v1.0.0-rc.1_build", "docker.io", "library/x",
                             "v1.0.0-rc.1_build", None, "v1.0.0-rc.1_build",
                             "docker.io/library/x:v1.0.0-rc.1_build")),
    ("tag-underscore-first", Valid("x:_private", "docker.io", "library/x", "_private", None,
                                   "_private", "docker.io/library/x:_private")),
    ("tag-upper", Valid("ubuntu:Jammy", "docker.io", "library/ubuntu", "Jammy", None, "Jammy",
                        "docker.io/library/ubuntu:Jammy")),
    ("tag-128", Valid(f"nginx:{TAG128}", "docker.io", "library/nginx", TAG128, None, TAG128,
                      f"docker.io/library/nginx:{TAG128}")),
    ("tag-latest-on-port", Valid("localhost:5000/app:latest", "localhost:5000", "app", "latest",
                                 None, "latest", "localhost:5000/app:latest")),
    # Digests.
    ("digest-only", Valid(f"nginx@{D256}", "docker.io", "library/nginx", None, D256, "",
                          f"docker.io/library/nginx@{D256}")),
    ("digest-only-registry", Valid(f"ghcr.io/acme/app@{D256}", "ghcr.io", "acme/app", None, D256,
                                   "", f"ghcr.io/acme/app@{D256}")),
    ("digest-sha384", Valid(f"ghcr.io/acme/app@{D384}", "ghcr.io", "acme/app", None, D384, "",
                            f"ghcr.io/acme/app@{D384}")),
    ("digest-sha512", Valid(f"ghcr.io/acme/app:1.0@{D512}", "ghcr.io", "acme/app", "1.0", D512,
                            "1.0", f"ghcr.io/acme/app:1.0@{D512}")),
    ("digest-port", Valid(f"localhost:5000/app@{D256}", "localhost:5000", "app", None, D256, "",
                          f"localhost:5000/app@{D256}")),
    ("digest-ipv6", Valid(f"[2001:db8::1]:443/a/b:c@{D256}", "[2001:db8::1]:443", "a/b", "c",
                          D256, "c", f"[2001:db8::1]:443/a/b:c@{D256}")),
]  # fmt: skip

VALID_IDS = [case_id for case_id, _ in VALID]
VALID_CASES = [case for _, case in VALID]


@pytest.mark.parametrize("case", VALID_CASES, ids=VALID_IDS)
def test_parse_valid(case: Valid) -> None:
    ref = parse_reference(case.text)
    assert ref.registry == case.registry
    assert ref.repository == case.repository
    assert ref.tag == case.tag
    assert ref.digest == case.digest
    assert ref.effective_tag == case.effective_tag
    assert str(ref) == case.canonical
    assert ref.name == f"{case.registry}/{case.repository}"


@pytest.mark.parametrize("case", VALID_CASES, ids=VALID_IDS)
def test_round_trip(case: Valid) -> None:
    ref = parse_reference(case.text)
    again = parse_reference(str(ref))
    assert again == ref
    assert str(again) == str(ref)
    # The constructor accepts every parsed value as canonical.
    assert ImageRef(ref.registry, ref.repository, ref.tag, ref.digest) == ref


def test_enough_cases() -> None:
    assert len(VALID) >= 45
    assert len(INVALID) >= 25
    assert len(set(VALID_IDS)) == len(VALID_IDS)
    assert len({case_id for case_id, _, _ in INVALID}) == len(INVALID)


INVALID: list[tuple[str, str, str]] = [
    # (id, input, substring the message must contain)
    ("empty", "", "empty"),
    ("upper-bare", "NGINX", "repository names must be lowercase: did you mean 'nginx'?"),
    ("upper-namespace", "ghcr.io/Acme/app",
     "repository names must be lowercase: did you mean 'ghcr.io/acme/app'?"),
    ("upper-keeps-tag", "ghcr.io/acme/App:V1", "did you mean 'ghcr.io/acme/app:V1'?"),
    ("upper-single-label-host", "Acme/app:V1", "did you mean 'acme/app:V1'?"),
    ("upper-hub-path", "docker.io/Library/Nginx", "did you mean 'docker.io/library/nginx'?"),
    ("empty-tag", "nginx:", "tag after ':' is empty"),
    ("tag-only", ":tag", "repository name before ':' is missing"),
    ("digest-only-no-name", f"@{D256}", "repository name before '@' is missing"),
    ("short-digest", "nginx@sha256:abc", "exactly 64 hex digits, got 3"),
    ("md5", "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
     "unsupported digest algorithm 'md5'; supported algorithms: sha256, sha384, sha512"),
    ("upper-hex", f"x@sha256:{HEX256.upper()}", "hex must be lowercase"),
    ("upper-algorithm", f"x@SHA256:{HEX256}", "must be lowercase: write 'sha256'"),
    ("digest-not-hex", f"x@sha256:{HEX256[:-1]}g", "'g', which is not a hex digit"),
    ("digest-no-algorithm", f"x@{HEX256}", "digest has no algorithm"),
    ("digest-empty", "x@", "digest is empty"),
    ("digest-no-hex", "x@sha256:", "no hex value"),
    ("sha512-length", f"x@sha512:{HEX256}", "exactly 128 hex digits, got 64"),
    ("bad-algorithm", f"x@sha_:{HEX256}", "invalid digest algorithm 'sha_'"),
    ("two-digests", f"x@{D256}@{D256}", "more than one '@'"),
    ("double-slash", "ghcr.io//x", "'//'"),
    ("leading-slash", "/x", "starts with '/'"),
    ("trailing-slash", "x/", "ends with '/'"),
    ("leading-space", " nginx", "whitespace is not allowed"),
    ("inner-space", "nginx :1.25", "whitespace is not allowed"),
    ("trailing-newline", "nginx\n", "whitespace is not allowed"),
    ("tab", "ghcr.io/\tx", "whitespace is not allowed"),
    ("non-ascii", "ghcr.io/acmé/app", "printable ASCII"),
    ("nul", "nginx\x00", "printable ASCII"),
    ("https", "https://ghcr.io/x", "drop the scheme 'https://' and write 'ghcr.io/x'"),
    ("docker-scheme", "docker://nginx:1.25", "drop the scheme"),
    ("two-tags", "ghcr.io/x:tag:extra", "at most one ':'"),
    ("tag-129", f"nginx:{TAG128}x", "at most 128 characters"),
    ("tag-leading-dot", "nginx:.hidden", "must start with a letter, digit or '_'"),
    ("tag-leading-dash", "nginx:-rc", "must start with a letter, digit or '_'"),
    ("tag-bad-char", "nginx:1+2", "'+' is not allowed"),
    ("bare-image-id", HEX256, "ambiguous with an image id"),
    ("bare-image-id-tag", f"{HEX256}:latest", "ambiguous with an image id"),
    ("name-too-long", "a" * 300, "at most 255 characters"),
    ("name-256", f"ghcr.io/{NAME_MAX}b", "is 256 characters long"),
    ("input-too-long", "a" * 5000, "more than the 4096 accepted"),
    ("bad-port", "ghcr.io:abc/x", "invalid port 'abc'"),
    ("empty-port", "ghcr.io:/x", "invalid port ''"),
    ("double-dot-host", "a..b/c", "invalid registry host 'a..b'"),
    ("host-leading-dash", "-ghcr.io/x", "invalid registry host '-ghcr.io'"),
    ("host-underscore", "my_registry.io/x", "invalid registry host 'my_registry.io'"),
    ("ipv6-unbracketed", "::1/x", "enclose it in brackets"),
    ("ipv6-unclosed", "[::1/x", "without the closing ']'"),
    ("path-double-dot", "ghcr.io/a..b/c", "invalid repository path component 'a..b'"),
    ("path-leading-sep", "ghcr.io/-app", "invalid repository path component '-app'"),
    ("path-trailing-sep", "acme/app_", "invalid repository path component 'app_'"),
    ("path-triple-underscore", "acme/a___b", "invalid repository path component 'a___b'"),
    ("path-bad-char", "ghcr.io/a+b/c", "'+' is not allowed"),
    ("colon-in-path", "ghcr.io/a:b/c", "':' is not allowed"),
    ("tag-with-slash", "ghcr.io/x:1.0/y", "':' is not allowed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "hint"),
    [(text, hint) for _, text, hint in INVALID],
    ids=[case_id for case_id, _, _ in INVALID],
)
def test_parse_invalid(text: str, hint: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    message = str(info.value)
    assert hint in message
    assert message.startswith("invalid image reference ")
    # The input is quoted (repr, truncated) so the user sees what was rejected.
    assert repr(text[:100]) in message


def test_invalid_reference_is_value_error() -> None:
    assert issubclass(InvalidReference, ValueError)
    with pytest.raises(ValueError, match="tag after ':' is empty"):
        parse_reference("nginx:")


def test_long_input_is_truncated_in_message() -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference("a" * 5000)
    message = str(info.value)
    assert "a" * 101 not in message
    assert "(5000 characters)" in message
    assert len(message) < 400


@pytest.mark.parametrize("value", [None, 42, b"nginx", ["nginx"]], ids=repr)
def test_non_str_is_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse_reference(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_digest(value)  # type: ignore[arg-type]


# parse_digest ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest", [D256, D384, D512, PAUSE, CILIUM], ids=["256", "384", "512", "pause", "cilium"]
)
def test_parse_digest_valid(digest: str) -> None:
    assert parse_digest(digest) == digest


def test_digest_lengths() -> None:
    assert DIGEST_HEX_LENGTHS == {"sha256": 64, "sha384": 96, "sha512": 128}
    for algorithm, length in DIGEST_HEX_LENGTHS.items():
        assert len(hashlib.new(algorithm).hexdigest()) == length


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "digest is empty"),
        (HEX256, "no algorithm"),
        (f":{HEX256}", "no algorithm"),
        ("sha256:", "no hex value"),
        ("sha256:abc", "exactly 64 hex digits, got 3"),
        (f"sha256:{HEX384}", "exactly 64 hex digits, got 96"),
        (f"sha384:{HEX256}", "exactly 96 hex digits, got 64"),
        (f"sha256:{HEX256}0", "exactly 64 hex digits, got 65"),
        (f"sha256:{HEX256.upper()}", f"write 'sha256:{HEX256}'"),
        (f"Sha256:{HEX256}", "must be lowercase: write 'sha256'"),
        (f"sha256:{HEX256[:-1]}z", "'z', which is not a hex digit"),
        (f"sha1:{'a' * 40}", "unsupported digest algorithm 'sha1'"),
        (f"md5:{'a' * 32}", "supported algorithms: sha256, sha384, sha512"),
        (f"sha256+b64:{HEX256}", "unsupported digest algorithm 'sha256+b64'"),
        (f"-sha256:{HEX256}", "invalid digest algorithm '-sha256'"),
        (f" sha256:{HEX256}", "whitespace is not allowed"),
        (f"sha256:{HEX256}\n", "whitespace is not allowed"),
        (f"sha256:{HEX256}:{HEX256}", "':', which is not a hex digit"),
        ("x" * 5000, "5000 characters"),
    ],
    ids=[
        "empty", "no-algorithm", "empty-algorithm", "no-hex", "short", "sha256-with-384-hex",
        "sha384-with-256-hex", "long", "upper-hex", "upper-algorithm", "non-hex", "sha1", "md5",
        "multi-algorithm", "bad-algorithm", "leading-space", "trailing-newline", "two-colons",
        "too-long",
    ],
)  # fmt: skip
def test_parse_digest_invalid(text: str, hint: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_digest(text)
    message = str(info.value)
    assert hint in message
    assert message.startswith("invalid digest ")


# ImageRef -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        ("nginx:latest", "latest"),
        (f"nginx@{D256}", ""),
        (f"nginx:1.25@{D256}", "1.25"),
    ],
    ids=["none", "tag", "explicit-latest", "digest-only", "tag-and-digest"],
)
def test_effective_tag(text: str, expected: str) -> None:
    assert parse_reference(text).effective_tag == expected


def test_with_digest_keeps_tag_and_validates() -> None:
    ref = parse_reference("ghcr.io/acme/app:1.0")
    pinned = ref.with_digest(D256)
    assert pinned == ImageRef("ghcr.io", "acme/app", "1.0", D256)
    assert str(pinned) == f"ghcr.io/acme/app:1.0@{D256}"
    assert pinned.effective_tag == "1.0"
    assert ref.digest is None  # the original is unchanged
    repinned = pinned.with_digest(D512)
    assert repinned.digest == D512
    assert parse_reference(str(repinned)) == repinned


def test_with_digest_on_untagged() -> None:
    pinned = parse_reference("nginx").with_digest(D384)
    assert pinned.tag is None
    assert pinned.effective_tag == ""
    assert str(pinned) == f"docker.io/library/nginx@{D384}"


@pytest.mark.parametrize(
    ("digest", "hint"),
    [
        ("sha256:abc", "exactly 64 hex digits"),
        (f"md5:{'a' * 32}", "unsupported digest algorithm 'md5'"),
        (HEX256, "no algorithm"),
        (f"sha256:{HEX256.upper()}", "lowercase"),
    ],
    ids=["short", "md5", "no-algorithm", "upper-hex"],
)
def test_with_digest_rejects_invalid(digest: str, hint: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference("nginx:1.25").with_digest(digest)
    assert hint in str(info.value)


def test_imageref_is_frozen_and_hashable() -> None:
    ref = parse_reference("nginx:1.25")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "1.26"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/nginx:1.25")} == {ref}
    assert not hasattr(ref, "__dict__")


def test_equivalent_spellings_are_equal() -> None:
    spellings = [
        "nginx",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx",
        "index.docker.io/library/nginx",
        "registry-1.docker.io/nginx",
        "DOCKER.IO/library/nginx",
    ]
    assert {parse_reference(text) for text in spellings} == {ImageRef("docker.io", "library/nginx")}


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        (("Docker.io", "library/nginx"), "canonical form 'docker.io'"),
        (("index.docker.io", "library/nginx"), "canonical form 'docker.io'"),
        (("docker.io", "nginx"), "did you mean 'library/nginx'?"),
        (("acme", "app"), "Docker Hub namespace"),
        (("", "app"), "registry is empty"),
        (("ghcr.io", ""), "repository is empty"),
        (("ghcr.io", "Acme/app"), "did you mean 'acme/app'?"),
        (("ghcr.io", "acme//app"), "'//'"),
        (("ghcr.io", "acme/app", ""), "tag after ':' is empty"),
        (("ghcr.io", "acme/app", None, "sha256:abc"), "exactly 64 hex digits"),
        (("ghcr.io:x", "app"), "invalid port 'x'"),
        (("ghcr.io", "a" * 250), "the maximum is 255"),
    ],
    ids=[
        "upper-registry", "alias", "missing-library", "single-label", "empty-registry",
        "empty-repository", "upper-repository", "empty-component", "empty-tag", "bad-digest",
        "bad-port", "too-long",
    ],
)  # fmt: skip
def test_imageref_rejects_non_canonical_fields(fields: tuple[str | None, ...], hint: str) -> None:
    with pytest.raises(InvalidReference) as info:
        ImageRef(*fields)  # type: ignore[arg-type]
    assert hint in str(info.value)


def test_imageref_field_types() -> None:
    with pytest.raises(TypeError):
        ImageRef("ghcr.io", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ImageRef("ghcr.io", "app", 1)  # type: ignore[arg-type]


def test_regexes_are_ascii_only() -> None:
    # Python's \w would accept non-ASCII letters; Go's (and docker's) does not.
    with pytest.raises(InvalidReference):
        parse_reference("nginx:versión")
    with pytest.raises(InvalidReference):
        parse_reference("nginx:١٢")  # Arabic-Indic digits
