"""The standard-library gRPC client of pullgate-containerd, checked against independent
implementations: the `hpack` package for header compression, the generated protobuf classes
for the messages, and a real grpcio server for the whole call."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import doc, write_files
from lab.silent import silent_server
from pullgate.grpclite.call import CallError, ProtocolError, unary_call
from pullgate.grpclite.hpack import Decoder, HpackError, encode
from pullgate.grpclite.messages import decode_verify_response, encode_verify_request
from pullgate.v1 import verifier_pb2 as pb

VERIFY = "/pullgate.v1.ImageVerifier/Verify"
D = "sha256:" + "a" * 64
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=30)
values = st.text(max_size=200)
header_lists = st.lists(st.tuples(names, values), max_size=12)


@settings(max_examples=300)
@given(blocks=st.lists(header_lists, min_size=1, max_size=6), huffman=st.booleans())
def test_hpack_decodes_what_an_independent_encoder_writes(blocks, huffman) -> None:
    encoder, decoder = hpack.Encoder(), Decoder()  # one connection: the dynamic table carries over
    for headers in blocks:
        assert decoder.decode(encoder.encode(headers, huffman=huffman)) == headers


@settings(max_examples=200)
@given(headers=header_lists)
def test_hpack_encodes_what_an_independent_decoder_reads(headers) -> None:
    assert hpack.Decoder().decode(encode(headers)) == headers


@pytest.mark.parametrize(
    "block",
    [b"\x80", b"\xff\xff\xff\xff\xff\xff", b"\x40\x85\xff\xff\xff\xff\xff", b"\x00\x05ab", b"\xbf"],
    ids=["index-0", "huge-integer", "bad-huffman", "truncated-string", "unknown-index"],
)
def test_hpack_refuses_malformed_blocks(block: bytes) -> None:
    with pytest.raises(HpackError):
        Decoder().decode(block)


string_maps = st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5)


@settings(max_examples=200)
@given(
    name=st.text(max_size=80),
    size=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    maps=st.tuples(string_maps, string_maps, string_maps),
    strings=st.lists(st.text(max_size=40), min_size=6, max_size=6),
)
def test_requests_match_the_generated_class(name, size, maps, strings) -> None:
    media, digest, artifact, operation, namespace, pod = strings
    raw = encode_verify_request(
        image_name=name,
        media_type=media,
        digest=digest,
        size=size,
        descriptor_annotations=maps[0],
        artifact_type=artifact,
        operation=operation,
        namespace=namespace,
        annotations=maps[1],
        labels=maps[2],
        pod_name=pod,
        pod_uid=pod,
    )
    expected = pb.VerifyRequest(
        image_name=name,
        descriptor=pb.Descriptor(
            media_type=media, digest=digest, size=size, annotations=maps[0], artifact_type=artifact
        ),
        operation=operation,
        namespace=namespace,
        annotations=maps[1],
        labels=maps[2],
        pod_name=pod,
        pod_uid=pod,
    )
    assert pb.VerifyRequest.FromString(raw) == expected


@settings(max_examples=200)
@given(
    ok=st.booleans(),
    texts=st.lists(st.text(max_size=300), min_size=3, max_size=3),
    warnings=st.lists(st.text(max_size=20), max_size=3),
)
def test_responses_match_the_generated_class(ok, texts, warnings) -> None:
    message = pb.VerifyResponse(
        ok=ok,
        reason=texts[0],
        decision_id=texts[1],
        policy_revision=texts[2],
        policies=[pb.PolicyResult(name="p", rules=[pb.RuleResult(name="r", passed=True)])],
        warnings=warnings,
        cached=True,
        code=texts[0][:20],
    )
    assert decode_verify_response(message.SerializeToString()) == {
        "ok": ok,
        "reason": texts[0],
        "decision_id": texts[1],
        "policy_revision": texts[2],
        "code": texts[0][:20],
    }


# -- whole calls against the real daemon (grpcio's server) --------------------------------------


@pytest.fixture
def daemon(daemons, tmp_path: Path):  # type: ignore[no-untyped-def]
    return daemons(
        write_files(tmp_path / "p", {"p.yaml": doc("open", '  images: ["ghcr.io/open/**"]\n')})
    )


def request(name: str, digest: str = D) -> bytes:
    return encode_verify_request(
        image_name=name,
        media_type="",
        digest=digest,
        size=0,
        descriptor_annotations={},
        artifact_type="",
        operation="",
        namespace="",
        annotations={},
        labels={},
        pod_name="",
        pod_uid="",
    )


def test_a_call_gets_the_same_answer_as_grpcio(daemon) -> None:
    for name in ("ghcr.io/open/app:1", "quay.io/other/app"):
        lite = decode_verify_response(
            unary_call(str(daemon.socket), VERIFY, request(name), timeout=5)
        )
        real = daemon.verify(name)
        assert (lite["ok"], lite["reason"], lite["policy_revision"]) == (
            real.ok,
            real.reason,
            real.policy_revision,
        )


def test_status_codes_come_through(daemon) -> None:
    with pytest.raises(CallError) as info:
        unary_call(str(daemon.socket), VERIFY, request("GHCR.IO/X"), timeout=5)
    assert info.value.code == "INVALID_ARGUMENT" and "lowercase" in info.value.details
    with pytest.raises(CallError) as info:
        unary_call(str(daemon.socket), "/pullgate.v1.ImageVerifier/Nope", b"", timeout=5)
    assert info.value.code == "UNIMPLEMENTED"


def test_no_daemon_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(CallError) as info:
        unary_call(str(tmp_path / "none.sock"), VERIFY, b"", timeout=1)
    assert info.value.code == "UNAVAILABLE" and "No such file" in info.value.details


def test_a_daemon_that_does_not_answer_is_a_deadline(tmp_path: Path) -> None:
    with silent_server(tmp_path / "silent.sock") as path, pytest.raises(CallError) as info:
        unary_call(path, VERIFY, b"", timeout=0.5)
    assert info.value.code == "DEADLINE_EXCEEDED" and "0.5s" in info.value.details


def test_a_peer_that_is_not_http2_is_a_protocol_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(
            b"\x00\x40\x01" + b"\x0a\x00\x00\x00\x00\x00" + b"x" * 16385
        )  # an unknown, huge frame
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with pytest.raises(ProtocolError):
            unary_call(str(path), VERIFY, b"", timeout=2)
    finally:
        thread.join()
        server.close()
