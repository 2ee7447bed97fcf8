"""Verify requests with huge maps, huge strings and invalid digests: every one is answered
with a denial or INVALID_ARGUMENT / RESOURCE_EXHAUSTED, never an allow, and the daemon stays
healthy. In process (request_from_proto, check_request, decide) for the many generated
examples; over a real unix socket to a real daemon for a few hundred."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import compile_dir, doc, key, verifiers, write_files
from pullgate.api import judgement_to_proto, request_from_proto
from pullgate.decide import Decider
from pullgate.request import InvalidRequest, check_request
from pullgate.rules import CompiledPolicySet
from pullgate.v1 import verifier_pb2 as pb

from .conftest import FUZZ, scaled
from .strategies import digest, mutated, references

pytestmark = pytest.mark.slow  # 10,000 examples a target: more than 10 s


D = "sha256:" + "d" * 64
SIGNED = "127.0.0.1:9/signed/app"  # port 9 refuses: the daemon's signature fetch fails at once
MiB = 1 << 20

# Everything under 127.0.0.1:9 needs a signature; a rule there also walks the (huge) label and
# annotation maps; every other image is selected by no policy: denied by default.
POLICIES = {
    "p.yaml": doc("signed", f'  images: ["127.0.0.1:9/**"]\n  authorities:{key("release")}\n')
    + doc(
        "labelled",
        '  images: ["127.0.0.1:9/**"]\n  rules:\n    - name: labels\n'
        "      expr: 'request.pod.labels.all(k, k.size() < 100000) && "
        'size(request.pod.annotations) >= 0 && image.annotations.exists(k, k == "x") || true\'\n',
    )
}

strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "pull", "run", "team-a", "UPPER", "-x-", "a" * 64, "x" * 1000]),
)
maps = st.one_of(
    st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
    st.builds(
        lambda n, v: {f"k{i}": v for i in range(n)},
        st.sampled_from([1, 10, 100, 1000]),  # 10,000: the examples and the daemon
        strings,
    ),
)


def _utf8(text: str) -> str:
    """protobuf strings are UTF-8: lone surrogates become U+FFFD (raw bytes are sent below)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


digests = st.one_of(
    digest, mutated(digest), st.sampled_from([D, "", "sha256:", "sha256:" + "D" * 64])
)
images = st.one_of(references, st.sampled_from([SIGNED, f"{SIGNED}@{D}", "ghcr.io/acme/app"]))
digests, images = digests.map(_utf8), images.map(_utf8)
sizes = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 1234])

requests = st.builds(
    lambda image, d, media, size, dann, art, op, ns, ann, labels, pod, uid: pb.VerifyRequest(
        image_name=image,
        descriptor=pb.Descriptor(
            media_type=media, digest=d, size=size, annotations=dann, artifact_type=art
        ),
        operation=op,
        namespace=ns,
        annotations=ann,
        labels=labels,
        pod_name=pod,
        pod_uid=uid,
    ),
    images,
    digests,
    strings,
    sizes,
    maps,
    strings,
    st.sampled_from(["", "pull", "run", "push", "PULL"]) | strings,
    st.sampled_from(["", "team-a", "kube-system", "Team", "a" * 64]) | strings,
    maps,
    maps,
    strings,
    strings,
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPolicySet:
    return compile_dir(write_files(tmp_path_factory.mktemp("grpc") / "policies", POLICIES))


@FUZZ
@given(requests)
@example(pb.VerifyRequest(image_name=SIGNED, descriptor=pb.Descriptor(digest=D)))
@example(pb.VerifyRequest(image_name="a" * MiB, descriptor=pb.Descriptor(digest=D)))
@example(pb.VerifyRequest(image_name=SIGNED, descriptor=pb.Descriptor(digest="x" * MiB)))
@example(
    pb.VerifyRequest(
        image_name=SIGNED,
        descriptor=pb.Descriptor(digest=D, annotations={f"k{i}": "v" for i in range(10_000)}),
        labels={f"k{i}": "v" * 100 for i in range(10_000)},
        namespace="n" * MiB,
    )
)
def test_in_process_requests_are_refused_or_denied(
    compiled: CompiledPolicySet, message: pb.VerifyRequest
) -> None:
    decider = Decider(verifiers(), log=None)
    try:
        request = check_request(request_from_proto(message), require_digest=True)
        judgement = decider.decide(compiled, request)
    except InvalidRequest as exc:
        assert str(exc)
        return
    assert not judgement.ok, judgement.reason
    assert judgement.reason.startswith("denied"), judgement.reason
    assert len(judgement.reason) <= 1000
    response = judgement_to_proto(judgement)
    assert pb.VerifyResponse.FromString(response.SerializeToString()).ok is False


# -- a real daemon ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from lab.daemon import start_daemon

    tmp = tmp_path_factory.mktemp("grpc-daemon")
    started = start_daemon(tmp / "daemon", write_files(tmp / "policies", POLICIES))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def stub(daemon: Any) -> Any:
    from pullgate.v1 import verifier_pb2_grpc as pb_grpc

    return pb_grpc.ImageVerifierStub(daemon.channel())


FIELDS = ["image_name", "namespace", "pod_name", "pod_uid", "operation", "media_type", "digest"]
FIELDS += ["labels", "annotations", "descriptor_annotations"]


def _big(field: str, size: int, char: str) -> pb.VerifyRequest:
    """A plausible request with one field (or map) of about ``size`` bytes."""
    message = pb.VerifyRequest(image_name=SIGNED, descriptor=pb.Descriptor(digest=D))
    if field in ("labels", "annotations", "descriptor_annotations"):
        entries = max(1, size // 100)
        values = {f"{char}{i}": char * 90 for i in range(entries)}
        target = (
            message.descriptor.annotations
            if field == "descriptor_annotations"
            else getattr(message, field)
        )
        target.update(values)
    elif field in ("media_type", "digest"):
        setattr(message.descriptor, field, char * size)
    else:
        setattr(message, field, char * size)
    return message


@scaled(0.03, minimum=100)
@given(
    st.one_of(
        st.builds(
            _big,
            st.sampled_from(FIELDS),
            st.sampled_from([1, 1000, 100_000, MiB, 5 * MiB]),
            st.sampled_from(["a", "é", "\u2028", "\x00", "/", "😀"]),
        ),
        requests,
    )
)
def test_the_daemon_answers_every_request_with_a_denial_or_a_refusal(
    stub: Any, message: pb.VerifyRequest
) -> None:
    try:
        response = stub.Verify(message, timeout=30)
    except grpc.RpcError as exc:
        code = exc.code()
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), (
            code,
            str(exc.details())[:300],
        )
        return
    assert not response.ok, response.reason
    assert response.reason.startswith("denied"), response.reason
    assert response.decision_id


GOOD = pb.VerifyRequest(image_name=SIGNED, descriptor=pb.Descriptor(digest=D)).SerializeToString()


@st.composite
def wire_bytes(draw: st.DrawFn) -> bytes:
    """A serialised request with bytes flipped, cut or inserted (invalid UTF-8 in a string
    field, a length running past the end, an unknown wire type...)."""
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        piece = draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\x0f", b"\x7f", b"\x00"]))
        op = draw(st.integers(0, 2))
        if op == 0:
            data[pos:pos] = piece
        elif op == 1:
            data[pos : pos + 1] = piece
        else:
            del data[pos:]
    return bytes(data)


@scaled(0.01, minimum=100)
@given(wire_bytes() | st.binary(max_size=64))
def test_undecodable_requests_are_refused(daemon: Any, stub: Any, raw: bytes) -> None:
    """grpcio itself answers bytes that are no VerifyRequest with INTERNAL ("Exception
    deserializing request!") before pullgate sees them: refused, never allowed."""
    verify = daemon.channel().unary_unary(
        "/pullgate.v1.ImageVerifier/Verify",
        request_serializer=lambda b: b,
        response_deserializer=pb.VerifyResponse.FromString,
    )
    try:
        response = verify(raw, timeout=30)
    except grpc.RpcError as exc:
        code, details = exc.code(), str(exc.details())
        if code == grpc.StatusCode.INTERNAL:
            assert details == "Exception deserializing request!", details
        else:
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), (
                code
            )
        return
    assert not response.ok, response.reason


def test_the_daemon_is_healthy_after_the_fuzzing(daemon: Any, stub: Any) -> None:
    """Runs after the test above (file order): the daemon survived, serves, and judges."""
    assert daemon.process.poll() is None
    assert daemon.health() == health_pb2.HealthCheckResponse.SERVING
    response = stub.Verify(
        pb.VerifyRequest(image_name=SIGNED, descriptor=pb.Descriptor(digest=D)), timeout=30
    )
    assert not response.ok
    assert "release" in response.reason
    assert "Traceback" not in Path(daemon.log).read_text()
