"""The `notation` CLI shim, against a test double of notation v1.3.2 that answers with the real
transcripts in ../shared/fixtures/notation-cli (no notation binary can be installed here).

The double (tests/lab/fake_notation/notation) records what the shim gave it: argv, its
environment, the trust policy and the trust store. Every transcript is mapped to evidence
through the shim, and every transcript is replayed through the double with its recorded inputs
to show the double answers as the real program did.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import KEY_A, shared_fixtures
from pullgate.evidence import Evidence, Signature, Target
from pullgate.policy import Authority, KeyAuthority, Mark, NotationAuthority
from pullgate.reference import ImageRef
from pullgate.registry.credentials import Credentials
from pullgate.verifiers.notation_cli import MAX_REASON, NotationCli, available

FAKE = Path(__file__).resolve().parent / "lab" / "fake_notation" / "notation"
MARK = Mark("test", 1, 1)
SUBJECT = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
OTHER_DIGEST = "sha256:" + "ab" * 32
HOSTS = {"plain": "127.0.0.1:5055", "auth": "127.0.0.1:5056", "down": "127.0.0.1:5057"}
PASSWORD = "pa55-w0rd-xyz"
FAKE_KEYS = {
    "FAKE_NOTATION_SCENARIO",
    "FAKE_NOTATION_RECORD",
    "FAKE_NOTATION_TRANSCRIPTS",
    "FAKE_NOTATION_DELAY",
    "FAKE_NOTATION_STDOUT",
    "FAKE_NOTATION_STDERR",
    "FAKE_NOTATION_EXIT_CODE",
    "FAKE_NOTATION_VERBATIM",
}
BASE_ENV = {"PATH", "HOME", "NOTATION_CONFIG", "XDG_CONFIG_HOME"}

# What each recorded outcome must become: (verified, number of warnings, reason fragment).
# The fragment is from the transcript's Error: line (failures), its Warning: lines (successes
# with warnings), or, with -v, the check that failed.
FAILED_ALL = "signature verification failed for all the signatures associated with"
NO_SIGNATURE = "signature verification failed: no signature is associated with"
UNTRUSTED = (
    "authenticity validation failed: the signature's certificate chain does not contain any "
    "trusted certificate"
)
EXPECT: dict[str, tuple[bool, int, str]] = {
    "valid-strict": (True, 0, ""),
    "valid-strict--v": (True, 0, ""),
    "valid-strict-identity-match": (True, 0, ""),
    "valid-by-tag": (True, 1, "Always verify the artifact using digest"),
    "valid-by-tag--v": (True, 1, "Always verify the artifact using digest"),
    "valid-user-metadata-mismatch": (False, 0, FAILED_ALL),
    "valid-user-metadata-mismatch--v": (
        False,
        0,
        "User required metadata foo=bar is not present in the signature",
    ),
    "expired-sig-strict": (False, 0, FAILED_ALL),
    "expired-sig-strict--v": (
        False,
        0,
        "expiry validation failed: digital signature has expired on",
    ),
    "expired-sig-strict--d": (
        False,
        0,
        "expiry validation failed: digital signature has expired on",
    ),
    "expired-sig-permissive": (True, 1, 'expiry was set to "log" and failed'),
    "expired-sig-permissive--v": (True, 1, 'expiry was set to "log" and failed'),
    "expired-sig-audit": (True, 1, 'expiry was set to "log" and failed'),
    "expired-sig-skip": (False, 0, "level is 'skip'"),
    "expired-sig-skip--v": (False, 0, "level is 'skip'"),
    "expired-cert-strict": (False, 0, FAILED_ALL),
    "expired-cert-strict--v": (
        False,
        0,
        "authenticTimestamp validation failed: verification time is after certificate",
    ),
    "expired-cert-permissive": (True, 1, 'authenticTimestamp was set to "log" and failed'),
    "invalid-sig-strict": (False, 0, FAILED_ALL),
    "invalid-sig-strict--v": (False, 0, "integrity validation failed: unable to parse"),
    "invalid-sig-audit": (False, 0, FAILED_ALL),
    "invalid-sig-audit--v": (False, 0, "integrity validation failed: unable to parse"),
    "unsigned": (False, 0, NO_SIGNATURE),
    "unsigned--v": (False, 0, NO_SIGNATURE),
    "multi-sig-valid-first": (True, 0, ""),
    "multi-sig-valid-first--v": (True, 0, ""),
    "multi-sig-invalid-first": (True, 0, ""),
    "multi-sig-invalid-first--v": (True, 0, ""),
    "multi-sig-invalid-first-max1": (False, 0, FAILED_ALL),
    "multi-sig-invalid-first-max1--v": (False, 0, UNTRUSTED),
    "truststore-wrong-cert": (False, 0, FAILED_ALL),
    "truststore-wrong-cert--v": (False, 0, UNTRUSTED),
    "truststore-wrong-cert-audit": (True, 1, 'authenticity was set to "log" and failed'),
    "truststore-missing": (False, 0, 'the trust store "e2e" of type "ca" does not exist'),
    "truststore-missing--v": (False, 0, 'the trust store "e2e" of type "ca" does not exist'),
    "truststore-empty": (False, 0, 'no x509 certificates were found in trust store "e2e"'),
    "truststore-empty--v": (False, 0, 'no x509 certificates were found in trust store "e2e"'),
    "trustpolicy-missing": (False, 0, "trust policy is not present"),
    "trustpolicy-missing--v": (False, 0, "trust policy is not present"),
    "trustpolicy-scope-mismatch": (False, 0, "has no applicable trust policy statement"),
    "trustpolicy-scope-mismatch--v": (False, 0, "has no applicable trust policy statement"),
    "trustpolicy-scope-exact": (True, 0, ""),
    "trustpolicy-malformed": (False, 0, "malformed trust policy"),
    "trustpolicy-malformed--v": (False, 0, "malformed trust policy"),
    "trustpolicy-invalid-identity": (False, 0, "missing separator"),
    "trustpolicy-invalid-identity--v": (False, 0, "missing separator"),
    "identity-mismatch": (False, 0, FAILED_ALL),
    "identity-mismatch--v": (
        False,
        0,
        "authenticity validation failed: signing certificate from the digital signature does "
        "not match the X.509 trusted identities",
    ),
    "registry-down": (False, 0, "connect: connection refused"),
    "registry-down--v": (False, 0, "connect: connection refused"),
    "digest-not-found": (False, 0, "failed to get manifest descriptor"),
    "digest-not-found--v": (False, 0, "failed to get manifest descriptor"),
    "tag-not-found": (False, 0, "e2e-valid:nope: not found"),
    "tag-not-found--v": (False, 0, "e2e-valid:nope: not found"),
    "repo-not-found": (False, 0, "no-such-repo@sha256:b8479de3f88f…: not found"),
    "repo-not-found--v": (False, 0, "no-such-repo@sha256:b8479de3f88f…: not found"),
    "no-insecure-flag-127": (False, 0, "http: server gave HTTP response to HTTPS client"),
    "localhost-no-flag": (True, 0, ""),
    "config-insecure-notation-config": (
        False,
        0,
        "http: server gave HTTP response to HTTPS client",
    ),
    "config-insecure-xdg": (True, 0, ""),
    "xdg-config-home": (True, 0, ""),
    "usage-no-reference": (False, 0, "missing reference to the artifact"),
    "usage-two-references": (True, 0, ""),
    "usage-two-references-unsigned-first": (False, 0, NO_SIGNATURE),
    "usage-unknown-flag": (False, 0, "unknown shorthand flag: 'o' in -o"),
    "usage-bad-reference": (False, 0, "invalid reference: no tag or digest"),
    "usage-invalid-reference": (False, 0, 'invalid reference: invalid repository "E2E-Valid"'),
    "version": (False, 0, "exited 0 without its line 'Successfully verified signature for"),
    "auth-no-creds": (False, 0, "basic credential not found"),
    "auth-no-creds--v": (False, 0, "basic credential not found"),
    "auth-env-creds": (True, 0, ""),
    "auth-env-bad-password": (False, 0, "response status code 401: Unauthorized"),
    "auth-env-bad-password--v": (False, 0, "response status code 401: Unauthorized"),
    "auth-flag-creds": (True, 0, ""),
    "auth-docker-config-home": (True, 0, ""),
    "auth-docker-config-env": (True, 0, ""),
    "auth-docker-config-bad": (False, 0, "response status code 401: Unauthorized"),
    "auth-docker-config-bad--v": (False, 0, "response status code 401: Unauthorized"),
    "auth-unsigned": (False, 0, NO_SIGNATURE),
}

# Transcripts whose outcome the double decides itself from what it was given (usage, trust
# policy, scope, trust store): it prints notation's Error: line, without -v log lines.
SELF_CHECKED = {
    "truststore-missing--v",
    "truststore-empty--v",
    "trustpolicy-scope-mismatch--v",
}


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def system_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim passes its PATH on; the double's `#!/usr/bin/env python3` then finds the
    system python3 (a pyenv shim would add variables of its own to the environment)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


@pytest.fixture(scope="module")
def transcripts_path() -> Path:
    return shared_fixtures() / "notation-cli" / "transcripts.json"


@pytest.fixture(scope="module")
def transcripts(transcripts_path: Path) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in json.loads(transcripts_path.read_text())}


@pytest.fixture(scope="module")
def localkeys() -> Path:
    return shared_fixtures() / "notation/notation/test/e2e/testdata/config/localkeys"


@pytest.fixture(scope="module")
def e2e_pem(localkeys: Path) -> str:
    return (localkeys / "e2e.crt").read_text()


def make_cert(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CERT_ONE = make_cert("one")
CERT_TWO = make_cert("two")


def notation_authority(
    name: str = "acme",
    *,
    pem: str = CERT_ONE,
    store: str = "ca",
    identities: tuple[str, ...] = ("*",),
    level: str = "strict",
) -> Authority:
    spec = NotationAuthority(
        trust_store_type=store,  # type: ignore[arg-type]
        certificates=pem,
        trusted_identities=identities,
        level=level,  # type: ignore[arg-type]
    )
    return Authority(name=name, spec=spec, mark=MARK)


def target(
    registry: str = "127.0.0.1:5055", repository: str = "team/app", digest: str = SUBJECT
) -> Target:
    return Target(ref=ImageRef(registry, repository, digest=digest), digest=digest)


MakeCli = Callable[..., NotationCli]


@pytest.fixture
def make_cli(tmp_path: Path, transcripts_path: Path) -> Iterator[MakeCli]:
    """A NotationCli running the double with one scenario; closed after the test."""
    made: list[NotationCli] = []

    def make(
        scenario: str = "valid-strict", fake: Mapping[str, str] | None = None, **kw: Any
    ) -> NotationCli:
        env = {
            "FAKE_NOTATION_SCENARIO": scenario,
            "FAKE_NOTATION_RECORD": str(tmp_path / "record.jsonl"),
            "FAKE_NOTATION_TRANSCRIPTS": str(transcripts_path),
            **(fake or {}),
        }
        kw.setdefault("insecure", ("127.0.0.1:5055",))
        kw.setdefault("timeout", 10.0)
        kw.setdefault("workdir", str(tmp_path))
        cli = NotationCli(str(FAKE), extra_env=env, **kw)
        made.append(cli)
        return cli

    yield make
    for cli in made:
        cli.close()


def records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "record.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def last_record(tmp_path: Path) -> dict[str, Any]:
    found = records(tmp_path)
    assert found, "the double was not run"
    return found[-1]


def custom(stdout: str = "", stderr: str = "", code: int = 0) -> dict[str, str]:
    return {
        "FAKE_NOTATION_STDOUT": stdout,
        "FAKE_NOTATION_STDERR": stderr,
        "FAKE_NOTATION_EXIT_CODE": str(code),
    }


def literal(message: str) -> str:
    """The longest stretch of a transcript message that is neither a reference, a digest nor a
    quoted value: what any faithful reason must carry."""
    chunks = re.split(r'\{REGISTRY\}[^\s"]*|sha256:[0-9a-f]{64}|"[^"]*"', message)
    return max((c.strip() for c in chunks), key=len)


def subject_of(t: dict[str, Any]) -> tuple[str, str]:
    """The repository and digest a transcript verified (e2e-valid@SUBJECT when it had none)."""
    argv = t["argv"]
    positional = [a for a in argv[2:] if a.startswith("{REGISTRY}/")]
    if argv[1] == "verify" and positional:
        path = positional[0].removeprefix("{REGISTRY}/")
        repo, at, digest = path.partition("@")
        if (
            at
            and re.fullmatch(r"[a-z0-9-]+", repo)
            and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
        ):
            return repo, digest
    return "e2e-valid", SUBJECT


def level_of(t: dict[str, Any]) -> str:
    try:
        return str(
            json.loads(t["trustpolicy"])["trustPolicies"][0]["signatureVerification"]["level"]
        )
    except (TypeError, ValueError, KeyError, IndexError):
        return "strict"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class Store:
    def __init__(self, creds: Credentials | None) -> None:
        self.creds = creds
        self.asked: list[str] = []

    def get(self, host: str) -> Credentials | None:
        self.asked.append(host)
        return self.creds


# -- every transcript, through the shim ------------------------------------------------------------


def test_every_transcript_has_an_expectation(transcripts: dict[str, dict[str, Any]]) -> None:
    assert len(transcripts) == 79
    assert sorted(transcripts) == sorted(EXPECT)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_transcript_maps_to_evidence(
    name: str,
    tmp_path: Path,
    transcripts: dict[str, dict[str, Any]],
    make_cli: MakeCli,
    e2e_pem: str,
) -> None:
    t = transcripts[name]
    host = "localhost:5055" if name == "localhost-no-flag" else HOSTS[t["registry"]]
    repo, digest = subject_of(t)
    verbose = "-v" in t["argv"] or "-d" in t["argv"]
    insecure = (host,) if "--insecure-registry" in t["argv"] else ()
    env = t["env"]
    creds = None
    if "NOTATION_USERNAME" in env:
        creds = Credentials(env["NOTATION_USERNAME"], env["NOTATION_PASSWORD"])
    elif "-u" in t["argv"]:
        argv = t["argv"]
        creds = Credentials(argv[argv.index("-u") + 1], argv[argv.index("-p") + 1])
    cli = make_cli(name, insecure=insecure, verbose=verbose, credentials=Store(creds))

    evidence = cli.verify(
        notation_authority(pem=e2e_pem, level=level_of(t)), target(host, repo, digest)
    )

    verified, warnings, fragment = EXPECT[name]
    assert evidence.verified is verified, evidence.error
    assert len(evidence.warnings) == warnings
    if verified:
        assert evidence == Evidence(
            signatures=(Signature(kind="notation"),), warnings=evidence.warnings
        )
        recorded = [
            line[len("Warning: ") :].replace("{REGISTRY}", host)
            for line in t["stderr"].splitlines()
            if line.startswith("Warning: ")
        ]
        assert list(evidence.warnings) == recorded
        assert all(fragment in w for w in evidence.warnings)
    else:
        assert fragment in evidence.error
        assert "\n" not in evidence.error and len(evidence.error) <= MAX_REASON
        errors = [line[7:] for line in t["stderr"].splitlines() if line.startswith("Error: ")]
        if t["exit_code"] != 0:
            assert len(errors) == 1
            assert evidence.error.startswith("notation: ")
            assert literal(errors[0])[:50] in evidence.error
        if creds is not None:
            assert creds.password not in evidence.error

    # what the shim ran matches the transcript's own flags and reference
    rec = last_record(tmp_path)
    flags = (["-v"] if verbose else []) + (["--insecure-registry"] if insecure else [])
    assert rec["argv"] == ["verify", *flags, f"{host}/{repo}@{digest}"]
    if creds is not None:
        assert rec["env"]["NOTATION_PASSWORD"] == creds.password


# -- every transcript, replayed through the double -------------------------------------------------


def build_sandbox(t: dict[str, Any], sandbox: Path, localkeys: Path, host: str) -> None:
    config = sandbox / "notation"
    config.mkdir(parents=True)
    (sandbox / "home").mkdir()
    if t["trustpolicy"] is not None:
        (config / "trustpolicy.json").write_text(t["trustpolicy"].replace("{REGISTRY}", host))
    for store, cert in t["truststore"].items():
        where = config / "truststore" / "x509" / store
        where.mkdir(parents=True)
        if cert is not None:
            (where / cert).write_text((localkeys / cert).read_text())


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_double_replays_transcript(
    name: str,
    tmp_path: Path,
    transcripts: dict[str, dict[str, Any]],
    transcripts_path: Path,
    localkeys: Path,
) -> None:
    """Given a transcript's own inputs, the double answers exactly what notation answered."""
    t = transcripts[name]
    host = "localhost:5055" if name == "localhost-no-flag" else HOSTS[t["registry"]]
    sandbox = tmp_path / "s"
    build_sandbox(t, sandbox, localkeys, host)
    env = {k: v.replace("{CONFIG}", str(sandbox)) for k, v in t["env"].items()}
    env["PATH"] = "/usr/bin:/bin"
    env["FAKE_NOTATION_SCENARIO"] = name
    env["FAKE_NOTATION_TRANSCRIPTS"] = str(transcripts_path)
    argv = [a.replace("{REGISTRY}", host) for a in t["argv"][1:]]
    done = subprocess.run(
        [str(FAKE), *argv], env=env, capture_output=True, text=True, timeout=30, check=False
    )

    def fill(text: str) -> str:
        return text.replace("{REGISTRY}", host).replace("{CONFIG}", str(sandbox))

    assert (done.returncode, done.stdout) == (t["exit_code"], fill(t["stdout"]))
    if name in SELF_CHECKED:  # the double's own Error: line, without the -v log lines
        kept = [line for line in fill(t["stderr"]).splitlines() if not line.startswith("level=")]
        assert done.stderr.splitlines() == kept
    else:
        assert done.stderr == fill(t["stderr"])


# -- trust policy, trust store, argv, environment --------------------------------------------------


def test_trust_policy_and_trust_store(tmp_path: Path, make_cli: MakeCli) -> None:
    cli = make_cli()
    authority = notation_authority(
        pem=CERT_ONE + CERT_TWO,
        identities=("x509.subject: C=US, ST=WA, O=Acme", "x509.subject: C=US, ST=WA, O=Beta"),
        level="permissive",
    )
    assert cli.verify(authority, target()).verified

    rec = last_record(tmp_path)
    expected = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "acme",
                "registryScopes": ["127.0.0.1:5055/team/app"],
                "signatureVerification": {"level": "permissive"},
                "trustStores": ["ca:acme"],
                "trustedIdentities": [
                    "x509.subject: C=US, ST=WA, O=Acme",
                    "x509.subject: C=US, ST=WA, O=Beta",
                ],
            }
        ],
    }
    assert rec["trustpolicy"] == json.dumps(expected, indent=4) + "\n"
    assert rec["truststore"] == {"x509/ca/acme/1.crt": CERT_ONE, "x509/ca/acme/2.crt": CERT_TWO}
    assert rec["truststore_dirs"] == ["x509", "x509/ca", "x509/ca/acme"]
    assert rec["config_source"] == "NOTATION_CONFIG"

    # private: the sandbox and everything in it belong to the owner only
    assert cli.sandbox is not None and cli.sandbox.parent == tmp_path
    config = Path(rec["config_dir"])
    assert config.is_relative_to(cli.sandbox)
    assert stat.S_IMODE(cli.sandbox.stat().st_mode) == 0o700
    for path in config.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert stat.S_IMODE(config.stat().st_mode) == 0o700


def test_signing_authority_store(tmp_path: Path, make_cli: MakeCli) -> None:
    assert make_cli().verify(notation_authority("rel", store="signingAuthority"), target()).verified
    rec = last_record(tmp_path)
    policy = json.loads(rec["trustpolicy"])["trustPolicies"][0]
    assert policy["trustStores"] == ["signingAuthority:rel"]
    assert rec["truststore"] == {"x509/signingAuthority/rel/1.crt": CERT_ONE}


def test_skip_level_names_no_store(tmp_path: Path, make_cli: MakeCli) -> None:
    """notation rejects a skip statement with stores or identities; skip is never verified."""
    evidence = make_cli("expired-sig-skip").verify(notation_authority(level="skip"), target())
    assert not evidence.verified
    assert "level is 'skip', so notation checked nothing" in evidence.error
    rec = last_record(tmp_path)
    assert json.loads(rec["trustpolicy"]) == {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "acme",
                "registryScopes": ["127.0.0.1:5055/team/app"],
                "signatureVerification": {"level": "skip"},
            }
        ],
    }
    assert rec["truststore"] == {} and rec["truststore_dirs"] == []


@pytest.mark.parametrize(
    ("name", "store"), [("..", "pullgate"), ("team a/b", "team-a-b"), ("x_1.2", "x_1.2")]
)
def test_store_names_notation_accepts(
    tmp_path: Path, make_cli: MakeCli, name: str, store: str
) -> None:
    assert make_cli().verify(notation_authority(name), target()).verified
    policy = json.loads(last_record(tmp_path)["trustpolicy"])["trustPolicies"][0]
    assert policy["name"] == store
    assert policy["trustStores"] == [f"ca:{store}"]


@pytest.mark.parametrize(
    ("registry", "insecure", "verbose", "flags"),
    [
        ("127.0.0.1:5055", ("127.0.0.1:5055",), True, ["-v", "--insecure-registry"]),
        ("127.0.0.1:5055", ("127.0.0.1",), True, ["-v", "--insecure-registry"]),
        ("127.0.0.1:5055", ("127.0.0.1:9999",), True, ["-v"]),
        ("127.0.0.1:5055", ("127.0.0.1:5055",), False, ["--insecure-registry"]),
        ("127.0.0.1:5055", (), False, []),
        # notation reaches localhost:<port> over plain HTTP without the flag
        ("localhost:5055", (), True, ["-v"]),
        ("registry.example.com", ("REGISTRY.example.com",), False, ["--insecure-registry"]),
    ],
)
def test_argv(
    tmp_path: Path,
    make_cli: MakeCli,
    registry: str,
    insecure: tuple[str, ...],
    verbose: bool,
    flags: list[str],
) -> None:
    cli = make_cli(insecure=insecure, verbose=verbose)
    assert cli.verify(notation_authority(), target(registry)).verified
    rec = last_record(tmp_path)
    assert rec["argv0"] == str(FAKE)
    assert rec["argv"] == ["verify", *flags, f"{registry}/team/app@{SUBJECT}"]


def test_docker_hub_reference(tmp_path: Path, make_cli: MakeCli) -> None:
    """notation keeps `docker.io` (oras-go reaches it at registry-1.docker.io), and so the
    trust policy scope is the normalised name, library/ included."""
    store = Store(None)
    cli = make_cli(credentials=store)
    assert cli.verify(notation_authority(), target("docker.io", "library/nginx")).verified
    rec = last_record(tmp_path)
    assert rec["argv"] == ["verify", "-v", f"docker.io/library/nginx@{SUBJECT}"]
    policy = json.loads(rec["trustpolicy"])["trustPolicies"][0]
    assert policy["registryScopes"] == ["docker.io/library/nginx"]
    assert store.asked == ["docker.io"]


def test_environment_is_minimal(
    tmp_path: Path, make_cli: MakeCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTATION_PASSWORD", "from-the-daemon")
    monkeypatch.setenv("DOCKER_CONFIG", "/etc/secret-docker")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/root/.config")
    cli = make_cli(fake={"NOTATION_USERNAME": "smuggled", "HOME": "/root"})
    assert cli.verify(notation_authority(), target()).verified
    rec = last_record(tmp_path)
    env = rec["env"]
    assert set(env) - FAKE_KEYS == BASE_ENV
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["NOTATION_CONFIG"] == rec["config_dir"]
    assert env["XDG_CONFIG_HOME"] == str(Path(rec["config_dir"]).parent)
    home = Path(env["HOME"])
    assert cli.sandbox is not None and home.parent == cli.sandbox
    assert list(home.iterdir()) == []  # no ~/.docker/config.json for notation to fall back on
    assert rec["cwd"] == str(home)
    assert rec["pgid"] == rec["pid"] == rec["sid"]  # its own session and process group


def test_credentials_go_through_the_environment_only(
    tmp_path: Path, make_cli: MakeCli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = Store(Credentials("alice", PASSWORD))
    cli = make_cli("auth-env-bad-password", credentials=store, insecure=("127.0.0.1:5056",))
    evidence = cli.verify(notation_authority(), target("127.0.0.1:5056"))
    assert not evidence.verified
    assert "response status code 401: Unauthorized" in evidence.error

    rec = last_record(tmp_path)
    assert store.asked == ["127.0.0.1:5056"]
    assert rec["env"]["NOTATION_USERNAME"] == "alice"
    assert rec["env"]["NOTATION_PASSWORD"] == PASSWORD
    assert set(rec["env"]) - FAKE_KEYS == BASE_ENV | {"NOTATION_USERNAME", "NOTATION_PASSWORD"}
    others = {k: v for k, v in rec["env"].items() if k not in ("NOTATION_PASSWORD",)}
    assert PASSWORD not in json.dumps(others)
    assert PASSWORD not in json.dumps(rec["argv"]) and "alice" not in json.dumps(rec["argv"])
    assert "-u" not in rec["argv"] and "-p" not in rec["argv"]
    assert PASSWORD not in evidence.error
    assert caplog.records and PASSWORD not in caplog.text


def test_a_password_notation_echoes_is_scrubbed(make_cli: MakeCli) -> None:
    stderr = f"Warning: retrying as alice:{PASSWORD}\nError: login refused for {PASSWORD}\n"
    cli = make_cli("custom", fake=custom(stderr=stderr, code=1))
    cli.credentials = Store(Credentials("alice", PASSWORD))
    evidence = cli.verify(notation_authority(), target())
    assert evidence.error == "notation: login refused for ***"

    stdout = "Successfully verified signature for {REFERENCE}\n"
    cli = make_cli("custom", fake=custom(stdout=stdout, stderr=stderr.splitlines()[0]))
    cli.credentials = Store(Credentials("alice", PASSWORD))
    evidence = cli.verify(notation_authority(), target())
    assert evidence.verified and evidence.warnings == ("retrying as alice:***",)


def test_identity_token_is_a_password_without_user(tmp_path: Path, make_cli: MakeCli) -> None:
    cli = make_cli(credentials=Store(Credentials("<token>", "refresh-token-1")))
    assert cli.verify(notation_authority(), target()).verified
    env = last_record(tmp_path)["env"]
    assert "NOTATION_USERNAME" not in env
    assert env["NOTATION_PASSWORD"] == "refresh-token-1"


def test_no_credentials_no_variables(tmp_path: Path, make_cli: MakeCli) -> None:
    store = Store(None)
    assert make_cli(credentials=store).verify(notation_authority(), target()).verified
    assert set(last_record(tmp_path)["env"]) - FAKE_KEYS == BASE_ENV
    assert store.asked == ["127.0.0.1:5055"]


def test_a_failing_credential_store_is_reported(tmp_path: Path, make_cli: MakeCli) -> None:
    class Broken:
        def get(self, host: str) -> Credentials | None:
            raise RuntimeError(f"helper printed {PASSWORD}")

    evidence = make_cli(credentials=Broken()).verify(notation_authority(), target())
    assert not evidence.verified
    assert "cannot look up registry credentials for 127.0.0.1:5055" in evidence.error
    assert PASSWORD not in evidence.error
    assert records(tmp_path) == []


# -- the sandbox's life ----------------------------------------------------------------------------


def test_config_dirs_are_cached_per_authority_and_repository(
    tmp_path: Path, make_cli: MakeCli
) -> None:
    cli = make_cli()
    acme = notation_authority()
    assert cli.verify(acme, target()).verified
    assert cli.verify(acme, target(digest=OTHER_DIGEST)).verified
    assert cli.verify(acme, target(repository="team/other")).verified
    assert cli.verify(notation_authority(level="audit"), target()).verified
    dirs = [r["config_dir"] for r in records(tmp_path)]
    assert dirs[0] == dirs[1]  # same authority, same repository
    assert len(set(dirs)) == 3

    sandbox = cli.sandbox
    assert sandbox is not None and sandbox.is_dir()
    cli.close()
    assert not sandbox.exists() and cli.sandbox is None
    assert cli.verify(acme, target()).verified  # a new sandbox after close
    assert cli.sandbox is not None and cli.sandbox != sandbox


def test_least_recently_used_config_dirs_go(tmp_path: Path, make_cli: MakeCli) -> None:
    cli = make_cli(max_configs=2)
    for repo in ("team/a", "team/b", "team/c"):
        assert cli.verify(notation_authority(), target(repository=repo)).verified
    first, second, third = (Path(r["config_dir"]) for r in records(tmp_path))
    assert not first.exists() and second.is_dir() and third.is_dir()


def test_context_manager_removes_the_sandbox(tmp_path: Path, transcripts_path: Path) -> None:
    env = {
        "FAKE_NOTATION_SCENARIO": "valid-strict",
        "FAKE_NOTATION_TRANSCRIPTS": str(transcripts_path),
    }
    with NotationCli(str(FAKE), workdir=str(tmp_path), extra_env=env) as cli:
        assert cli.verify(notation_authority(), target()).verified
        sandbox = cli.sandbox
    assert sandbox is not None and not sandbox.exists()


# -- what is not a verified signature --------------------------------------------------------------


def test_timeout_kills_the_process_group(tmp_path: Path, make_cli: MakeCli) -> None:
    cli = make_cli(timeout=0.5, fake={"FAKE_NOTATION_DELAY": "30"})
    started = time.monotonic()
    evidence = cli.verify(notation_authority(), target())
    assert time.monotonic() - started < 10
    assert not evidence.verified
    assert evidence.error.startswith("notation did not answer within 0.5s")

    rec = last_record(tmp_path)
    pids = [rec["pid"], *rec["children"]]
    assert len(pids) == 2 and rec["pgid"] == rec["pid"]
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], "a process of notation's group survived"


@pytest.mark.parametrize("binary", ["/nonexistent/notation", "pullgate-no-such-notation"])
def test_missing_binary(binary: str) -> None:
    assert not available(binary)
    with NotationCli(binary) as cli:
        evidence = cli.verify(notation_authority(), target())
    assert not evidence.verified
    assert f"the notation CLI ({binary}) is not installed or not on PATH" in evidence.error


def test_available() -> None:
    assert available(str(FAKE))


def test_binary_that_cannot_start(tmp_path: Path) -> None:
    broken = tmp_path / "notation"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    with NotationCli(str(broken), workdir=str(tmp_path)) as cli:
        evidence = cli.verify(notation_authority(), target())
    assert evidence.error == f"cannot run {broken}: No such file or directory"


def test_garbage_output(make_cli: MakeCli) -> None:
    fake = custom(stdout="\x1b[31m\u2603 \x7fgarbage\nmore\n", stderr="\u00ff\u00fe\n", code=0)
    evidence = make_cli("custom", fake=fake).verify(notation_authority(), target())
    assert not evidence.verified
    assert "exited 0 without its line 'Successfully verified signature for" in evidence.error
    assert "\x1b" not in evidence.error and "\n" not in evidence.error


def test_exit_zero_without_the_success_line(make_cli: MakeCli) -> None:
    evidence = make_cli("custom", fake=custom()).verify(notation_authority(), target())
    assert evidence.error == (
        "notation exited 0 without its line 'Successfully verified signature for "
        "127.0.0.1:5055/team/app@sha256:b8479de3f88f…'; not counted as verified"
    )


def test_success_line_on_stderr_does_not_count(make_cli: MakeCli) -> None:
    fake = custom(stderr="Successfully verified signature for {REFERENCE}\n")
    evidence = make_cli("custom", fake=fake).verify(notation_authority(), target())
    assert not evidence.verified


def test_success_for_another_reference(make_cli: MakeCli) -> None:
    cli = make_cli("valid-strict", fake={"FAKE_NOTATION_VERBATIM": "1"})
    evidence = cli.verify(notation_authority(), target())
    assert not evidence.verified
    assert evidence.error.startswith(
        "notation reported success for 127.0.0.1:5055/e2e-valid@sha256:b8479de3f88f…, not for "
        "127.0.0.1:5055/team/app@sha256:b8479de3f88f…"
    )


def test_skip_line(make_cli: MakeCli) -> None:
    evidence = make_cli("expired-sig-skip").verify(notation_authority(), target())
    assert not evidence.verified
    assert evidence.error == (
        "the notation trust policy level is 'skip', so notation checked nothing; pullgate does "
        "not count skipped verification (use level strict, permissive or audit)"
    )


def test_nonzero_exit_without_error_line(make_cli: MakeCli) -> None:
    stderr = "panic: runtime error: invalid memory address\n\ngoroutine 1 [running]:\n"
    evidence = make_cli("custom", fake=custom(stderr=stderr, code=2)).verify(
        notation_authority(), target()
    )
    assert evidence.error == (
        "notation failed with exit status 2 and no error message: panic: runtime error: invalid "
        "memory address"
    )
    silent = make_cli("custom", fake=custom(code=3)).verify(notation_authority(), target())
    assert silent.error == "notation failed with exit status 3 and no error message"


def test_killed_by_a_signal(make_cli: MakeCli) -> None:
    evidence = make_cli("custom", fake=custom(code=-9)).verify(notation_authority(), target())
    assert evidence.error == "notation was killed by signal SIGKILL"


def test_warnings_become_evidence_warnings(make_cli: MakeCli) -> None:
    fake = custom(
        stdout="Successfully verified signature for {REFERENCE}\n",
        stderr='Warning: expiry was set to "log"\nlevel=info msg=x\nWarning: a   b\tc\n',
    )
    evidence = make_cli("custom", fake=fake).verify(notation_authority(), target())
    assert evidence.verified
    assert evidence.warnings == ('expiry was set to "log"', "a b c")


def test_reason_is_one_bounded_line(make_cli: MakeCli) -> None:
    stderr = "Error: " + "x" * 200 + "\tmore\x1btext " + "y" * 500 + "\nError: second\n"
    evidence = make_cli("custom", fake=custom(stderr=stderr, code=1)).verify(
        notation_authority(), target()
    )
    assert evidence.error.startswith("notation: " + "x" * 200 + " more text yyy")
    assert len(evidence.error) == MAX_REASON
    assert evidence.error.endswith("…") and "\n" not in evidence.error


def test_other_authority_kinds_are_not_run(tmp_path: Path, make_cli: MakeCli) -> None:
    key = Authority(name="k", spec=KeyAuthority(public_key=KEY_A), mark=MARK)
    evidence = make_cli().verify(key, target())
    assert evidence.error == "the notation CLI verifies notation authorities only, not key"
    assert records(tmp_path) == []


def test_no_digest(tmp_path: Path, make_cli: MakeCli) -> None:
    no_digest = Target(ref=ImageRef("127.0.0.1:5055", "team/app", tag="v1"), digest="")
    assert make_cli().verify(notation_authority(), no_digest).error == "no digest to verify"
    assert records(tmp_path) == []


def test_ipv6_registries_cannot_be_scoped(tmp_path: Path, make_cli: MakeCli) -> None:
    evidence = make_cli().verify(notation_authority(), target("[::1]:5000"))
    assert "notation cannot verify images of [::1]:5000/team/app" in evidence.error
    assert records(tmp_path) == []


def test_authority_without_certificates(tmp_path: Path, make_cli: MakeCli) -> None:
    evidence = make_cli().verify(notation_authority(pem="not a certificate"), target())
    assert evidence.error == (
        "cannot write the notation trust policy of 'acme': authority 'acme' has no PEM "
        "certificate to trust"
    )
    assert records(tmp_path) == []


# -- the double itself follows notation ------------------------------------------------------------


def run_double(args: list[str], sandbox: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox / "home"), **env}
    return subprocess.run(
        [str(FAKE), *args], env=full, capture_output=True, text=True, timeout=30, check=False
    )


def write_policy(sandbox: Path, statement: dict[str, Any]) -> None:
    config = sandbox / "notation"
    config.mkdir(parents=True, exist_ok=True)
    doc = {"version": "1.0", "trustPolicies": [statement]}
    (config / "trustpolicy.json").write_text(json.dumps(doc))


STATEMENT = {
    "name": "s",
    "registryScopes": ["*"],
    "signatureVerification": {"level": "strict"},
    "trustStores": ["ca:s"],
    "trustedIdentities": ["*"],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"trustStores": ["ca:a/b"]},
            'trust policy: trust policy statement "s" uses an unsupported trust store name "a/b" '
            'in trust store value "ca:a/b". Named store name needs to follow [a-zA-Z0-9_.-]+ '
            "format",
        ),
        (
            {"signatureVerification": {"level": "skip"}},
            'trust policy: trust policy statement "s" is set to skip signature verification but '
            "configured with trust stores and/or trusted identities, remove them if signature "
            "verification needs to be skipped",
        ),
        (
            {"registryScopes": ["127.0.0.1:5055/team/app", "*"]},
            "trust policy: trust policy statement \"s\" uses wildcard registry scope '*', a "
            "wildcard scope cannot be used in conjunction with other scope values",
        ),
        (
            {"registryScopes": ["[::1]:5000/team/app"]},
            'trust policy: registry scope "[::1]:5000/team/app" is not valid, make sure it is a '
            "fully qualified repository without the scheme, protocol or tag. For example "
            "domain.com/my/repository or a local scope like local/myOCILayout",
        ),
        (
            {"trustedIdentities": []},
            'trust policy: trust policy statement "s" is either missing trust stores or trusted '
            "identities, both must be specified",
        ),
        (
            {"registryScopes": ["127.0.0.1:5055/team/other"]},
            'signature verification failed: artifact "127.0.0.1:5055/team/app@'
            f'{SUBJECT}" has no applicable trust policy statement. Trust policy applicability '
            "for a given artifact is determined by registryScopes. To create a trust policy, "
            "see: https://notaryproject.dev/docs/quickstart/#create-a-trust-policy",
        ),
        (
            {},
            'the trust store "s" of type "ca" does not exist. Use command \'notation cert add\' '
            "to create and add trusted certificates to the trust store",
        ),
    ],
)
def test_double_checks_what_it_is_given(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    write_policy(tmp_path, {**STATEMENT, **change})
    done = run_double(
        ["verify", f"127.0.0.1:5055/team/app@{SUBJECT}"],
        tmp_path,
        XDG_CONFIG_HOME=str(tmp_path),
        FAKE_NOTATION_SCENARIO="valid-strict",
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"Error: {message}\n")


def test_double_rejects_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    write_policy(tmp_path, STATEMENT)
    store = tmp_path / "notation" / "truststore" / "x509" / "ca" / "s"
    store.mkdir(parents=True)
    (store / "1.crt").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n"
    )
    done = run_double(
        ["verify", f"127.0.0.1:5055/team/app@{SUBJECT}"],
        tmp_path,
        NOTATION_CONFIG=str(tmp_path / "notation"),
        FAKE_NOTATION_SCENARIO="valid-strict",
    )
    assert done.returncode == 1
    assert done.stderr.startswith('Error: could not parse a certificate from "')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--username"], "flag needs an argument: --username"),
        (["verify", "-vu"], "flag needs an argument: 'u' in -vu"),
        (["verify", "--output", "json", "x/y@sha256:00"], "unknown flag: --output"),
        (["verify", "-vo", "x/y:v1"], "unknown shorthand flag: 'o' in -vo"),
    ],
)
def test_double_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_double(args, tmp_path, FAKE_NOTATION_SCENARIO="valid-strict")
    assert (done.returncode, done.stderr) == (1, f"Error: {message}\n")


def test_double_without_scenario_says_so(tmp_path: Path, e2e_pem: str) -> None:
    write_policy(tmp_path, STATEMENT)
    store = tmp_path / "notation" / "truststore" / "x509" / "ca" / "s"
    store.mkdir(parents=True)
    (store / "1.crt").write_text(e2e_pem)
    done = run_double(
        ["verify", f"127.0.0.1:5055/team/app@{SUBJECT}"],
        tmp_path,
        NOTATION_CONFIG=str(tmp_path / "notation"),
    )
    assert done.returncode == 2
    assert "FAKE_NOTATION_SCENARIO" in done.stderr


def test_a_sandbox_removed_underneath_is_rebuilt(make_cli: MakeCli) -> None:
    cli = make_cli()
    assert cli.verify(notation_authority(), target()).verified
    first = cli.sandbox
    assert first is not None
    shutil.rmtree(first)
    assert cli.verify(notation_authority(), target()).verified
    assert cli.sandbox is not None and cli.sandbox != first and cli.sandbox.is_dir()
