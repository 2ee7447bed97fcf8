"""The daemon as a real process: gRPC over a real unix socket and TLS TCP, health, reflection,
status codes, the socket's mode, graceful drain, and the CLI talking to it."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import json_format
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import doc, key, write_files
from lab.daemon import BIN, DIGEST, start_daemon
from lab.registry import free_port
from pullgate.v1 import verifier_pb2 as pb
from pullgate.v1 import verifier_pb2_grpc as pb_grpc

POLICIES = {
    "p.yaml": doc("open", '  images: ["ghcr.io/open/**"]\n')
    + doc("signed", f'  images: ["127.0.0.1:9/signed/**"]\n  authorities:{key("release")}\n')
    + doc(
        "prod-only",
        '  images: ["ghcr.io/open/prod-*"]\n  rules:\n    - name: in-prod\n'
        '      expr: request.namespace.startsWith("prod-")\n'
        "      message: runs only in prod namespaces\n",
    )
}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write_files(tmp_path / "policies", POLICIES)


@pytest.mark.parametrize("engine", ["cel-python", "cel-expr"])
def test_verify_allow_and_deny_over_a_unix_socket(daemons, policies: Path, engine: str) -> None:
    d = daemons(policies, config=f"cel: {{engine: {engine}}}\n")
    allowed = d.verify("ghcr.io/open/app:1")
    assert allowed.ok and allowed.reason == 'allowed by policy "open"'
    assert len(allowed.decision_id) == 16 and len(allowed.policy_revision) == 16
    denied = d.verify("127.0.0.1:9/signed/app:1")
    assert not denied.ok
    assert denied.reason.startswith(
        'denied: policy "signed": no authority verified (release: cannot fetch the cosign '
        f"signatures of 127.0.0.1:9/signed/app@{DIGEST}: "
    )
    assert [(p.name, p.passed) for p in denied.policies] == [("signed", False)]
    assert denied.policies[0].authorities[0].error.startswith("cannot fetch the cosign signatures")
    scoped = d.verify("ghcr.io/open/prod-api", namespace="dev", labels={"a": "b"})
    assert not scoped.ok and "runs only in prod namespaces" in scoped.reason
    assert d.verify("ghcr.io/open/prod-api", namespace="prod-eu").ok
    default = d.verify("quay.io/other/x")
    assert not default.ok and "default action is deny" in default.reason
    decisions = [e for e in d.events() if e.get("event") == "decision"]
    assert [e["ok"] for e in decisions] == [True, False, False, True, False]
    assert {e["policyRevision"] for e in decisions} == {allowed.policy_revision}
    assert [e["engine"] for e in d.events() if e.get("event") == "cel_engine"] == [engine]


def test_the_grpc_json_mapping_equals_the_cli_json(daemons, policies: Path) -> None:
    d = daemons(policies)
    response = d.verify("127.0.0.1:9/signed/app:1")
    served = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
    cli = subprocess.run(
        [
            str(BIN / "pullgate"),
            "verify",
            "127.0.0.1:9/signed/app:1",
            "--digest",
            DIGEST,
            "--json",
            "--policies",
            str(policies),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    local = json.loads(cli.stdout)
    for answer in (served, local):
        answer.pop("decisionId")
    assert served == local


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.VerifyRequest(descriptor=pb.Descriptor(digest=DIGEST)), "image_name is empty"),
        (pb.VerifyRequest(image_name="ghcr.io/open/a"), "descriptor digest is empty"),
        (
            pb.VerifyRequest(
                image_name="ghcr.io/open/a", descriptor=pb.Descriptor(digest="sha256:12")
            ),
            "descriptor digest",
        ),
        (
            pb.VerifyRequest(image_name="GHCR.io/Open/A", descriptor=pb.Descriptor(digest=DIGEST)),
            "lowercase",
        ),
        (
            pb.VerifyRequest(
                image_name="ghcr.io/open/a", descriptor=pb.Descriptor(digest=DIGEST), operation="x"
            ),
            "operation 'x'",
        ),
    ],
)
def test_malformed_requests_are_invalid_argument(
    daemons, policies: Path, request_, message
) -> None:
    d = daemons(policies)
    with pytest.raises(grpc.RpcError) as info:
        d.stub().Verify(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_unavailable_and_not_serving_until_a_policy_set_loads(daemons, tmp_path: Path) -> None:
    policies = write_files(tmp_path / "broken", {"p.yaml": "apiVersion: [\n"})
    d = daemons(policies, serving=False)
    assert d.health() == health_pb2.HealthCheckResponse.NOT_SERVING
    assert d.health("") == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as info:
        d.verify("ghcr.io/open/a")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no policy set has loaded yet" in info.value.details()
    assert "p.yaml:2:1: YAML syntax error" in info.value.details()
    status = d.stub().Status(pb.StatusRequest(), timeout=5)
    assert status.policy_revision == "" and status.failed_at
    assert any("YAML syntax error" in e for e in status.load_errors)

    (policies / "p.yaml").write_text(POLICIES["p.yaml"])  # fixed: it loads and serves
    deadline = __import__("time").monotonic() + 5
    while d.health() != health_pb2.HealthCheckResponse.SERVING:
        assert __import__("time").monotonic() < deadline, d.log.read_text()
    assert d.verify("ghcr.io/open/a").ok
    status = d.stub().Status(pb.StatusRequest(), timeout=5)
    assert status.policy_revision and not status.load_errors and status.policies == 3


def test_socket_mode_and_parent_directory(daemons, policies: Path) -> None:
    d = daemons(policies)
    mode = os.stat(d.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert stat.S_IMODE(os.stat(d.socket.parent).st_mode) & 0o007 == 0  # not world-accessible


def test_reflection_lists_the_services(daemons, policies: Path) -> None:
    d = daemons(policies)
    stub = reflection_pb2_grpc.ServerReflectionStub(d.channel())
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"pullgate.v1.ImageVerifier", "grpc.health.v1.Health"} <= names


def test_sigterm_drains_and_exits_zero(daemons, policies: Path) -> None:
    d = daemons(policies)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(d.verify("ghcr.io/open/a").ok)
        except grpc.RpcError as exc:  # arrived after the drain began: refused, not hung
            results.append(exc.code())

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    d.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert d.process.wait(15) == 0
    assert not d.socket.exists()
    events = [e.get("event") for e in d.events()]
    assert "signal" in events and events[-1] == "stopped"
    assert len(results) == 20  # every call ended: judged, or refused while draining
    assert set(results) <= {True, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


def test_a_second_daemon_on_the_same_socket_refuses(
    daemons, policies: Path, tmp_path: Path
) -> None:
    d = daemons(policies)
    second = subprocess.run(
        [
            *(str(BIN / "pullgate"), "serve", "--policies", str(policies), "--listen", d.address),
            *("--state-dir", str(tmp_path / "state")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 2
    assert "another process is serving" in second.stderr
    assert d.verify("ghcr.io/open/a").ok  # the first one is untouched


def test_a_stale_socket_is_replaced(policies: Path, tmp_path: Path) -> None:
    path = tmp_path / "d" / "run" / "pullgate.sock"
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a killed daemon leaves
    d = start_daemon(tmp_path / "d", policies)
    try:
        assert d.verify("ghcr.io/open/a").ok
    finally:
        d.stop()


def test_plain_tcp_is_refused(policies: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            str(BIN / "pullgate"),
            "serve",
            "--policies",
            str(policies),
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"tcp://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 2
    assert "serves only over TLS: set tls.cert and tls.key" in r.stderr


# -- TLS and mTLS ----------------------------------------------------------------------------


def _cert(subject: str, issuer_key=None, issuer_name=None, *, ca: bool = False, san: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path: Path, key, cert) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    out = {}
    ca_key, ca = _cert("pullgate test CA", ca=True)
    other_key, other = _cert("some other CA", ca=True)
    out["ca_key"], out["ca"] = _write(tmp_path / "ca", ca_key, ca)
    server_key, server = _cert("localhost", ca_key, ca.subject, san=True)
    out["server_key"], out["server"] = _write(tmp_path / "server", server_key, server)
    client_key, client = _cert("containerd on node-1", ca_key, ca.subject)
    out["client_key"], out["client"] = _write(tmp_path / "client", client_key, client)
    rogue_key, rogue = _cert("rogue", other_key, other.subject)
    out["rogue_key"], out["rogue"] = _write(tmp_path / "rogue", rogue_key, rogue)
    return out


def _tls_channel(port: int, pki: dict[str, Path], who: str | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki[f"{who}_key"].read_bytes() if who else None,
        certificate_chain=pki[who].read_bytes() if who else None,
    )
    return grpc.secure_channel(f"localhost:{port}", creds)


def test_mtls_refuses_clients_without_a_certificate_from_the_ca(
    policies: Path, tmp_path: Path, pki: dict[str, Path]
) -> None:
    port = free_port()
    d = start_daemon(
        tmp_path / "d",
        policies,
        listen=[f"tcp://127.0.0.1:{port}"],
        config=f"tls: {{cert: {pki['server']}, key: {pki['server_key']}, clientCA: {pki['ca']}}}\n",
    )
    request = pb.VerifyRequest(image_name="ghcr.io/open/a", descriptor=pb.Descriptor(digest=DIGEST))
    try:
        with _tls_channel(port, pki, "client") as channel:
            assert pb_grpc.ImageVerifierStub(channel).Verify(request, timeout=10).ok
        for who in (None, "rogue"):
            with _tls_channel(port, pki, who) as channel:
                with pytest.raises(grpc.RpcError) as info:
                    pb_grpc.ImageVerifierStub(channel).Verify(request, timeout=10)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, who
        cli = subprocess.run(
            [
                str(BIN / "pullgate"),
                "verify",
                f"ghcr.io/open/a@{DIGEST}",
                "--server",
                f"tcp://localhost:{port}",
                "--tls-ca",
                str(pki["ca"]),
                "--tls-cert",
                str(pki["client"]),
                "--tls-key",
                str(pki["client_key"]),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.startswith(f"ALLOWED ghcr.io/open/a@{DIGEST}")
    finally:
        d.stop()


# -- the CLI against the daemon ----------------------------------------------------------


def test_cli_verify_and_status_against_the_daemon(daemons, policies: Path) -> None:
    d = daemons(policies)
    run = lambda *a: subprocess.run(  # noqa: E731
        [str(BIN / "pullgate"), *a], capture_output=True, text=True, timeout=30, check=False
    )
    r = run("verify", f"127.0.0.1:9/signed/x@{DIGEST}", "--server", d.address)
    assert r.returncode == 1 and r.stdout.startswith("DENIED 127.0.0.1:9/signed/x@")
    r = run("verify", "ghcr.io/open/x", "--digest", DIGEST, "--server", d.address, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    r = run("verify", "ghcr.io/open/x", "--server", d.address)
    assert r.returncode == 2 and "--server needs a digest" in r.stderr
    r = run("status", "--server", d.address)
    assert r.returncode == 0 and r.stdout.startswith("serving revision ")
    d.stop()
    r = run("verify", f"ghcr.io/open/x@{DIGEST}", "--server", d.address)
    assert r.returncode == 2 and "UNAVAILABLE" in r.stderr
