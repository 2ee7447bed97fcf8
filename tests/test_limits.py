"""Every bound of the config's ``limits:`` section (and the containerd executable's stdin bound),
each hit for real: the message says what was got, what the limit is and which key raises it;
a verification bound that is hit denies (never allows), with that reason."""

from __future__ import annotations

import datetime
import http.server
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import doc, write_files
from lab.daemon import Daemon
from lab.registry import Registry, sha256
from lab.sigstore import Cosign, cosign_binary
from pullgate.config import ConfigError, load_config
from pullgate.containerd import run as containerd_run
from pullgate.limits import DEFAULT_LIMITS, Busy, Limits, VerificationSlots
from pullgate.policy import PolicyLoadError, load_policy_dir
from pullgate.v1 import verifier_pb2 as pb

BIN = Path(sys.executable).parent
DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NOTATION_ARTIFACT = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
Keys = dict[str, tuple[Path, Path]]
StartDaemon = Callable[..., Daemon]


def plain(line: str) -> str:
    """A containerd answer without its reason code ("could not decide [CODE]: ...")."""
    return re.sub(r" \[[A-Z_]+\]", "", line, count=1)


def pullgate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pullgate"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def allow_all(name: str = "p") -> str:
    return doc(name, '  images: ["**"]\n')


# -- the config ---------------------------------------------------------------------------------


def test_the_limits_section_is_read_with_units(tmp_path: Path) -> None:
    path = tmp_path / "pullgate.yaml"
    path.write_text(
        "limits:\n"
        "  policyFileBytes: 2Mi\n"
        "  documentsPerFile: 50\n"
        "  expressionLength: 1000\n"
        "  signaturesPerImage: 3\n"
        "  manifestBytes: 1048576\n"
        "  blobBytes: 64Ki\n"
        "  envelopeBytes: 2Mi\n"
        "  concurrentVerifications: 4\n"
        "  verificationWait: 500ms\n"
    )
    config = load_config(path)
    assert config.limits == Limits(
        policy_file_bytes=2 << 20,
        documents_per_file=50,
        expression_length=1000,
        signatures_per_image=3,
        manifest_bytes=1 << 20,
        blob_bytes=64 << 10,
        envelope_bytes=2 << 20,
        concurrent_verifications=4,
        verification_wait=0.5,
    )
    assert config.concurrent_verifications == 4
    defaults = load_config(None)
    assert defaults.limits == DEFAULT_LIMITS
    assert defaults.concurrent_verifications == defaults.server.workers // 2 == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "limits:\n  blobBytes: 0\n",
            "pullgate.yaml:2:14: limits.blobBytes must be at least 1 byte, got 0",
        ),
        (
            "limits:\n  envelopeBytes: 3Xi\n",
            "pullgate.yaml:2:18: limits.envelopeBytes: '3Xi' is not a size; write bytes "
            "(1048576) or 256Ki, 1Mi, 1Gi",
        ),
        (
            "limits:\n  signaturesPerImage: 0\n",
            "pullgate.yaml:2:23: limits.signaturesPerImage must be at least 1, got 0",
        ),
        (
            "limits:\n  verificationWait: soon\n",
            "pullgate.yaml:2:21: limits.verificationWait:",
        ),
        ("limits:\n  maxSignatures: 3\n", "pullgate.yaml:2:3:"),
        (
            "server: {workers: 4}\nlimits:\n  concurrentVerifications: 4\n",
            "pullgate.yaml:3:28: limits.concurrentVerifications (4) must be less than "
            "server.workers (4): the other threads answer cached judgements and health checks; "
            "raise server.workers too",
        ),
    ],
    ids=["zero-size", "bad-unit", "zero-count", "bad-duration", "unknown-key", "no-free-thread"],
)
def test_bad_limits_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pullgate.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "pullgate.yaml")
    lines = [str(i).replace(f"{tmp_path}/", "") for i in caught.value.issues]
    assert len(lines) == 1 and lines[0].startswith(message), lines


# -- policy bounds: pullgate check / test, and the daemon ----------------------------------------


def test_a_bad_config_stops_check(tmp_path: Path) -> None:
    write_files(tmp_path / "policies", {"p.yaml": allow_all()})
    (tmp_path / "pullgate.yaml").write_text("limits: {expressionLength: 0}\n")
    r = pullgate("check", "policies", "--config", "pullgate.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "pullgate.yaml:1:28: limits.expressionLength must be at least 1, got 0" in r.stderr


def test_policy_file_bytes_check(tmp_path: Path) -> None:
    text = allow_all() + "#" + "x" * (1 << 20) + "\n"
    write_files(tmp_path / "policies", {"big.yaml": text})
    r = pullgate("check", "policies", cwd=tmp_path)
    assert r.returncode == 1
    size = len(text.encode())
    assert (
        f"policies/big.yaml:1:1: the file is {size} bytes, more than limits.policyFileBytes "
        "(1048576 bytes); split it into several files, or raise limits.policyFileBytes"
    ) in r.stderr
    # Exactly at the bound loads.
    fits = allow_all() + "#" + "x" * ((1 << 20) - len(allow_all().encode()) - 2) + "\n"
    write_files(tmp_path / "policies", {"big.yaml": fits})
    assert pullgate("check", "policies", cwd=tmp_path).returncode == 0


def test_policy_file_bytes_applies_to_files_policies_read(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    body = '  images: ["**"]\n  authorities:\n    - name: k\n      key: {path: big.pem}\n'
    write_files(root, {"p.yaml": doc("p", body)})
    (root / "big.pem").write_bytes(b"x" * 5000)
    with pytest.raises(PolicyLoadError) as caught:
        load_policy_dir(root, display="policies", limits=Limits(policy_file_bytes=4096))
    assert [str(i) for i in caught.value.issues] == [
        "policies/p.yaml:10:19: 'big.pem' is 5000 bytes, more than limits.policyFileBytes "
        "(4096 bytes); raise limits.policyFileBytes if this is legitimate"
    ]


def test_documents_per_file_check(tmp_path: Path) -> None:
    text = allow_all() + "---\n{}\n" * 1000  # 1001 documents
    write_files(tmp_path / "policies", {"many.yaml": text})
    r = pullgate("check", "policies", cwd=tmp_path)
    assert r.returncode == 1
    line = text.count("\n")  # the 1001st document: the last "{}", on the last line
    assert (
        f"policies/many.yaml:{line}:1: the file has 1001 YAML documents, more than "
        "limits.documentsPerFile (1000 documents); split it into several files, or raise "
        "limits.documentsPerFile"
    ) in r.stderr
    assert r.stderr.startswith("1 error in")  # the 1000 invalid documents were not even read


LONG_RULE = 'image.repository != "' + "a" * 4780 + '"'  # 4801 characters


def long_rule_policy() -> str:
    return doc("p", f"  images: [\"**\"]\n  rules:\n    - name: long\n      expr: '{LONG_RULE}'\n")


def test_expression_length_check_and_test(tmp_path: Path) -> None:
    policy_test = """\
        apiVersion: pullgate.dev/v1alpha1
        kind: PolicyTest
        metadata:
          name: t
        spec:
          cases:
            - name: any
              image: ghcr.io/acme/app
              expect: {ok: true}
        """
    write_files(tmp_path / "policies", {"p.yaml": long_rule_policy(), "t.yaml": policy_test})
    expected = (
        f"policies/p.yaml:10:13: rule 'long' is {len(LONG_RULE)} characters long, more than "
        "limits.expressionLength (4096 characters); split it into several rules, or raise "
        "limits.expressionLength"
    )
    check = pullgate("check", "policies", cwd=tmp_path)
    assert check.returncode == 1 and expected in check.stderr, check.stderr
    test = pullgate("test", "policies", cwd=tmp_path)
    assert test.returncode == 1 and expected in test.stderr, test.stderr
    # With the daemon's config, check and test apply its limits: raised here, so both pass.
    (tmp_path / "pullgate.yaml").write_text("limits: {expressionLength: 5000}\n")
    raised = pullgate("check", "policies", "--config", "pullgate.yaml", cwd=tmp_path)
    assert raised.returncode == 0, raised.stderr
    tested = pullgate("test", "policies", "--config", "pullgate.yaml", cwd=tmp_path)
    assert tested.returncode == 0 and "1 passed, 0 failed" in tested.stdout, tested.stdout


def test_the_daemon_applies_its_policy_limits(daemons: StartDaemon, tmp_path: Path) -> None:
    """Smaller limits in the daemon config: each file that breaks one is refused, the load
    error (Status, like any other) names the key; nothing is served."""
    policies = write_files(
        tmp_path / "policies",
        {
            "a-size.yaml": allow_all("a") + "#" + "x" * 5000 + "\n",
            "b-docs.yaml": allow_all("b") + "---\n{}\n" * 3,
            "c-expr.yaml": doc(
                "c", '  images: ["**"]\n  rules:\n    - name: r\n      expr: "1 + 1 == 2 && true"\n'
            ),
        },
    )
    d = daemons(
        policies,
        serving=False,
        config="limits: {policyFileBytes: 4Ki, documentsPerFile: 3, expressionLength: 10}\n",
    )
    deadline = time.monotonic() + 10
    status = d.stub().Status(pb.StatusRequest(), timeout=5)
    while not status.load_errors and time.monotonic() < deadline:
        time.sleep(0.05)
        status = d.stub().Status(pb.StatusRequest(), timeout=5)
    errors = [e.replace(f"{policies}/", "") for e in status.load_errors]
    size = (policies / "a-size.yaml").stat().st_size
    assert errors == [
        f"a-size.yaml:1:1: the file is {size} bytes, more than limits.policyFileBytes "
        "(4096 bytes); split it into several files, or raise limits.policyFileBytes",
        "b-docs.yaml:13:1: the file has 4 YAML documents, more than limits.documentsPerFile "
        "(3 documents); split it into several files, or raise limits.documentsPerFile",
        "c-expr.yaml:10:13: rule 'r' is 18 characters long, more than "
        "limits.expressionLength (10 characters); split it into several rules, or raise "
        "limits.expressionLength",
    ]
    assert status.policy_revision == ""
    with pytest.raises(grpc.RpcError) as caught:
        d.verify("ghcr.io/acme/app")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# -- verification bounds: a real registry, real cosign, the real daemon ------------------------


@pytest.fixture(scope="module")
def cosign(tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign(cosign_binary(), tmp_path_factory.mktemp("cosign"))


@pytest.fixture(scope="module")
def keys(cosign: Cosign) -> Keys:
    return {name: cosign.key_pair(name) for name in ("release", "other", "third")}


@pytest.fixture(scope="module")
def signed(registry: Registry, cosign: Cosign, keys: Keys) -> dict[str, str]:
    """Images by what they carry: "one" (a release signature), "three" (other, third, then
    release), "big" (a release signature whose payload is over 1 KiB)."""
    repo = f"limits/app-{uuid.uuid4().hex[:8]}"
    out = {}
    for name in ("one", "three", "big"):
        digest = registry.push_image(repo, name, content=f"{repo} {name}")
        out[name] = f"{registry.host}/{repo}@{digest}"
    cosign.sign(out["one"], keys["release"][0])
    for key in ("other", "third", "release"):
        cosign.sign(out["three"], keys[key][0])
    cosign.sign(out["big"], keys["release"][0], "-a", "note=" + "n" * 1500)
    return out


def release_policy(tmp_path: Path, registry: Registry, pub: Path) -> Path:
    body = (
        f'  images: ["{registry.host}/**"]\n  authorities:\n'
        f"    - name: release\n      key: {{path: {pub}}}\n"
    )
    return write_files(tmp_path / "policies", {"signed.yaml": doc("signed", body)})


def verify(d: Daemon, ref: str) -> pb.VerifyResponse:
    name, digest = ref.split("@")
    answer: pb.VerifyResponse = d.verify(name, digest=digest)
    return answer


def cli_verify(tmp_path: Path, policies: Path, ref: str, config: str) -> dict[str, object]:
    path = tmp_path / f"cli-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(f"policies: {policies}\n{config}")
    r = pullgate("verify", ref, "--config", str(path), "--json")
    assert r.returncode in (0, 1), r.stderr
    answer: dict[str, object] = json.loads(r.stdout)
    return answer


def test_signatures_per_image_and_blob_bytes_deny(
    daemons: StartDaemon, tmp_path: Path, registry: Registry, keys: Keys, signed: dict[str, str]
) -> None:
    policies = release_policy(tmp_path, registry, keys["release"][1])
    reg = f"registry: {{insecure: ['{registry.host}'], timeout: 5s}}\n"
    d = daemons(policies, config=reg + "limits: {signaturesPerImage: 2, blobBytes: 1Ki}\n")

    assert verify(d, signed["one"]).ok  # the control: within every bound

    three = verify(d, signed["three"])
    assert not three.ok
    assert three.reason.startswith(
        'denied: policy "signed": no authority verified (release: the image has 3 cosign '
        "signatures, more than limits.signaturesPerImage (2): only the first 2 were examined "
        "and 1 were not; raise limits.signaturesPerImage if a valid one may be among them; "
        "none of the 2 examined verified: signature 1:"
    ), three.reason

    big = verify(d, signed["big"])
    assert not big.ok
    error = big.policies[0].authorities[0].error
    assert error.startswith("the signature payload sha256:") and error.endswith(
        "bytes, more than limits.blobBytes (1024 bytes); raise limits.blobBytes if this is "
        "legitimate"
    ), error
    assert "more than limits.blobBytes (1024 bytes)" in big.reason

    # The same images within the default bounds: it was the bound that denied.
    for name in ("three", "big"):
        answer = cli_verify(tmp_path, policies, signed[name], reg)
        assert answer["ok"] is True, answer


def test_manifest_bytes_denies(
    tmp_path: Path, registry: Registry, keys: Keys, signed: dict[str, str]
) -> None:
    policies = release_policy(tmp_path, registry, keys["release"][1])
    reg = f"registry: {{insecure: ['{registry.host}'], timeout: 5s}}\n"
    answer = cli_verify(tmp_path, policies, signed["three"], reg + "limits: {manifestBytes: 200}\n")
    assert answer["ok"] is False
    reason = str(answer["reason"])
    assert "is larger than limits.manifestBytes=200 bytes; it was not downloaded" in reason
    assert reason.endswith("raise limits.manifestBytes if this is legitimate)"), reason


def self_signed_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def push_notation_signature(
    registry: Registry, repo: str, digest: str, envelope: bytes, size: int
) -> None:
    """A Notation signature manifest for ``digest`` (with the referrers tag schema index),
    whose envelope layer says it is ``size`` bytes."""
    config = registry.push_blob(repo, b"{}")
    layer = registry.push_blob(repo, envelope)
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": NOTATION_ARTIFACT,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": JWS, "digest": layer, "size": size}],
        "subject": subject,
    }
    data = json.dumps(manifest).encode()
    pushed = registry.push_manifest(repo, sha256(data), data)
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": pushed,
        "size": len(data),
        "artifactType": NOTATION_ARTIFACT,
    }
    registry.push_index(repo, digest.replace(":", "-"), [entry])


@pytest.mark.parametrize("announced", ["true size", "understated size"])
def test_envelope_bytes_denies(tmp_path: Path, registry: Registry, announced: str) -> None:
    """An envelope over limits.envelopeBytes is not downloaded (the descriptor says its size)
    or not read past the bound (the descriptor understates it)."""
    repo = f"limits/notation-{uuid.uuid4().hex[:8]}"
    digest = registry.push_image(repo, "v1", content=repo)
    envelope = b"{" + b" " * 5000 + b"}"
    size = len(envelope) if announced == "true size" else 100
    push_notation_signature(registry, repo, digest, envelope, size)
    (tmp_path / "ca.pem").write_text(self_signed_pem())
    body = (
        f'  images: ["{registry.host}/**"]\n  authorities:\n    - name: vendor\n'
        f"      notation:\n        trustStore: {{type: ca, path: {tmp_path / 'ca.pem'}}}\n"
        '        trustedIdentities: ["*"]\n'
    )
    policies = write_files(tmp_path / "policies", {"n.yaml": doc("n", body)})
    config = (
        f"registry: {{insecure: ['{registry.host}'], timeout: 5s}}\n"
        "notation: {backend: native}\nlimits: {envelopeBytes: 4Ki}\n"
    )
    answer = cli_verify(tmp_path, policies, f"{registry.host}/{repo}@{digest}", config)
    assert answer["ok"] is False
    got = f"is {len(envelope)} bytes, more than" if size > 4096 else "is larger than"
    assert (
        f"the envelope {got} limits.envelopeBytes (4096 bytes); raise limits.envelopeBytes if "
        "this is legitimate"
    ) in str(answer["reason"]), answer["reason"]


# -- the containerd executable's stdin ----------------------------------------------------------


def containerd(
    stdin: bytes, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    digest = "sha256:" + "a" * 64
    return subprocess.run(
        [
            str(BIN / "pullgate-containerd"),
            "-name",
            "ghcr.io/acme/app:v1",
            "-digest",
            digest,
            "-stdin-media-type",
            DESCRIPTOR,
            *flags,
        ],
        input=stdin,
        capture_output=True,
        timeout=30,
        env={
            "PATH": "/usr/bin:/bin",
            "PULLGATE_ADDRESS": "unix:///nonexistent/p.sock",
            **(env or {}),
        },
        check=False,
    )


def padded_descriptor(size: int) -> bytes:
    text = json.dumps({"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1})
    return text.encode() + b" " * (size - len(text))


def test_stdin_bound_refuses_with_exit_2() -> None:
    r = containerd(padded_descriptor(2 << 20))
    assert r.returncode == 2
    assert plain(r.stdout.decode()) == (
        "pullgate could not decide: stdin is larger than 1048576 bytes (the rest was not "
        "read); containerd sends a descriptor of a few hundred bytes: check the caller, or "
        "raise the limit with -max-stdin-bytes or PULLGATE_MAX_STDIN_BYTES\n"
    )


@pytest.mark.parametrize(
    ("flags", "env"),
    [(("-max-stdin-bytes", "3000000"), {}), ((), {"PULLGATE_MAX_STDIN_BYTES": "3000000"})],
)
def test_stdin_bound_is_configurable(flags: tuple[str, ...], env: dict[str, str]) -> None:
    """Raised, the same stdin is read and judged: here the daemon is absent, so exit 2 for
    that reason (fail closed), not for the size."""
    r = containerd(padded_descriptor(2 << 20), *flags, env=env)
    assert r.returncode == 2
    out = plain(r.stdout.decode())
    assert "could not decide (fail closed): unix:///nonexistent/p.sock" in out, out
    lowered = containerd(padded_descriptor(600), "-max-stdin-bytes=500")
    assert lowered.returncode == 2
    assert b"stdin is larger than 500 bytes" in lowered.stdout


@pytest.mark.parametrize("value", ["0", "-1", "1e6", "²", "9" * 40, str((64 << 20) + 1)])
def test_bad_stdin_bound_is_refused(value: str) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = containerd_run(
        ["-name", "x", "-digest", "sha256:" + "a" * 64, "-max-stdin-bytes", value],
        io.BytesIO(b"{}"),
        out,
        err,
        {},
    )
    assert code == 2
    assert plain(out.getvalue()).startswith(
        f"pullgate could not decide: -max-stdin-bytes: {value[:40]!r} is not a number of bytes "
        "from 1 to 67108864"
    ), out.getvalue()


# -- concurrent verifications ---------------------------------------------------------------------


def test_slots_wait_then_refuse_and_bound_the_waiters() -> None:
    slots = VerificationSlots(1, wait=30, max_waiting=1)
    held, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with slots.slot():
            held.set()
            release.wait(30)
            order.append("first")

    def second() -> None:
        with slots.slot():
            order.append("second")

    a = threading.Thread(target=first)
    a.start()
    assert held.wait(10)
    b = threading.Thread(target=second)
    b.start()
    deadline = time.monotonic() + 10
    while slots.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slots.waiting == 1
    with pytest.raises(Busy) as refused, slots.slot():  # the waiting room is full: at once
        pass
    assert str(refused.value) == (
        "1 verifications are already in progress (limits.concurrentVerifications) and 1 more "
        "are waiting for a slot, the most that may; the pull is not judged: retry later, or "
        "raise limits.concurrentVerifications (and server.workers) if the registry can take more"
    )
    release.set()
    a.join(10)
    b.join(10)
    assert order == ["first", "second"]
    assert (slots.in_use, slots.waiting, slots.refused) == (0, 0, 1)


def test_slots_refuse_after_the_wait() -> None:
    slots = VerificationSlots(1, wait=0.05, max_waiting=4)
    with slots.slot(), pytest.raises(Busy) as refused, slots.slot():
        pass
    assert "none came free within 0.05 s (limits.verificationWait)" in str(refused.value)
    with slots.slot(deadline=0):  # free again; a spent deadline does not matter then
        pass


class _Held(http.server.BaseHTTPRequestHandler):
    """Every request waits until the test releases it, then gets 404 (no signature)."""

    server: _HeldServer

    def do_GET(self) -> None:
        s = self.server
        with s.lock:
            s.in_flight += 1
        try:
            s.release.wait(60)
        finally:
            with s.lock:
                s.in_flight -= 1
        body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HeldServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Held)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.in_flight = 0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away (the daemon stopping) is no test failure

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def held_registry() -> Iterator[_HeldServer]:
    server = _HeldServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


def _digest(i: int) -> str:
    return "sha256:" + f"{i:064x}"


def test_concurrent_verifications_backpressure(
    daemons: StartDaemon, tmp_path: Path, held_registry: _HeldServer
) -> None:
    """40 clients at once against a registry that does not answer: 2 verify, the rest wait
    up to limits.verificationWait and are refused (RESOURCE_EXHAUSTED, naming the key); a
    cached judgement and health checks are answered meanwhile; every call is answered, and
    the daemon serves afterwards."""
    host = held_registry.host
    body = (
        f'  images: ["{host}/**"]\n  authorities:\n    - name: release\n'
        "      key:\n        publicKey: |\n"
        + "".join(
            f"          {line}\n"
            for line in ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
            .splitlines()
        )
    )
    policies = write_files(tmp_path / "policies", {"p.yaml": doc("p", body)})
    d = daemons(
        policies,
        config=(
            f"registry: {{insecure: ['{host}'], timeout: 30s, retries: 0}}\n"
            "cache: {judgementTtl: 10m}\n"
            "limits: {concurrentVerifications: 2, verificationWait: 300ms}\n"
        ),
    )
    image = f"{host}/acme/app"

    held_registry.release.set()  # a judgement to cache, answered at once
    warm = d.verify(image, digest=_digest(0))
    assert not warm.ok and "no cosign signature" in warm.reason
    held_registry.release.clear()

    results: dict[int, pb.VerifyResponse | grpc.RpcError] = {}

    def call(i: int) -> None:
        try:
            results[i] = d.stub().Verify(
                pb.VerifyRequest(image_name=image, descriptor=pb.Descriptor(digest=_digest(i))),
                timeout=60,
            )
        except grpc.RpcError as exc:
            results[i] = exc

    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(call, i) for i in range(1, 41)]
        deadline = time.monotonic() + 30
        while (len(results) < 38 or held_registry.in_flight < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        # 38 refused, 2 held in the registry: the slots are full.
        assert held_registry.in_flight == 2
        assert len(results) == 38
        # Meanwhile: a cached judgement, health, and the containerd executable (fails closed).
        cached = d.verify(image, digest=_digest(0))
        assert cached.cached and not cached.ok
        assert d.health() == 1  # SERVING
        blocked = subprocess.run(
            [
                str(BIN / "pullgate-containerd"),
                "-name",
                image,
                "-digest",
                _digest(99),
                "-stdin-media-type",
                DESCRIPTOR,
            ],
            input=json.dumps({"mediaType": OCI_MANIFEST, "digest": _digest(99), "size": 1}),
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin", "PULLGATE_ADDRESS": d.address},
            check=False,
        )
        assert blocked.returncode == 2
        assert plain(blocked.stdout).startswith(
            f"pullgate could not decide (fail closed): {d.address}: RESOURCE_EXHAUSTED: 2 "
            "verifications are already in progress (limits.concurrentVerifications)"
        ), blocked.stdout
        assert held_registry.in_flight == 2  # the cold ones are still waiting on the registry
        held_registry.release.set()
        for f in futures:
            f.result(timeout=60)

    assert len(results) == 40  # every call answered
    refused = [r for r in results.values() if isinstance(r, grpc.RpcError)]
    judged = [r for r in results.values() if isinstance(r, pb.VerifyResponse)]
    assert len(refused) == 38 and len(judged) == 2
    for exc in refused:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = str(exc.details())
        assert details.startswith(
            "2 verifications are already in progress (limits.concurrentVerifications) and "
        ), details
        assert (
            "none came free within 0.3 s (limits.verificationWait)" in details
            or "more are waiting for a slot, the most that may" in details
        ), details
    # Some waited for a slot, at most 13 at a time (server.workers 16 - 2 verifying - 1 kept
    # free); which ones depends on arrival order.
    waited = sum("limits.verificationWait" in str(e.details()) for e in refused)
    assert waited >= 1
    print(f"40 clients: 2 judged, {waited} refused after waiting, {38 - waited} at once")
    for r in judged:
        assert not r.ok and "no cosign signature" in r.reason  # never an allow
    # The daemon still serves, and the refusals were not cached as judgements.
    first_refused = next(i for i, r in results.items() if isinstance(r, grpc.RpcError))
    again = d.verify(image, digest=_digest(first_refused))
    assert not again.ok and not again.cached and "no cosign signature" in again.reason
    assert d.process.poll() is None
