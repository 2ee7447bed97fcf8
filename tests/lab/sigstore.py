"""A private Sigstore for tests: a Fulcio-like CA, a CT log and a Rekor log key, a
trusted_root.json naming them, and real cosign 2.5 (Debian trixie) to sign and verify.

Certificates are made the way Fulcio makes them: an email or URI SAN, the OIDC issuer in
Fulcio's extensions (1.3.6.1.4.1.57264.1.1 raw and .8 DER), code signing EKU, and an SCT from
the CT log embedded as a precertificate SCT. A SET is made the way Rekor makes it: an ECDSA
signature over the RFC 8785 JSON of {body, integratedTime, logID, logIndex}.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .registry import Registry, sha256
from .tools import debian_package

UTC = datetime.UTC
FULCIO = "1.3.6.1.4.1.57264.1."
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
SIG_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json"


def cosign_binary() -> Path:
    return debian_package("cosign", "trixie") / "usr/bin/cosign"


def _spki(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Log:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.key.public_key())).digest()

    def entry(self, doc: dict[str, Any], integrated_time: int, index: int = 1) -> dict[str, Any]:
        """A Rekor bundle (as cosign stores it in dev.sigstore.cosign/bundle) with a real SET."""
        payload = {
            "body": _b64(json.dumps(doc, separators=(",", ":")).encode()),
            "integratedTime": integrated_time,
            "logIndex": index,
            "logID": self.log_id.hex(),
        }
        signature = self.key.sign(rfc8785.dumps(payload), ec.ECDSA(hashes.SHA256()))
        return {"SignedEntryTimestamp": _b64(signature), "Payload": payload}


@dataclass
class Leaf:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


class PrivateSigstore:
    def __init__(
        self, *, ca_valid_days: int = 3650, ca_start: datetime.datetime | None = None
    ) -> None:
        now = datetime.datetime.now(UTC)
        self.start = ca_start or now - datetime.timedelta(days=1)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca_cert(
            "pullgate test Fulcio root", self.root_key, None, None, ca_valid_days
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = self._ca_cert(
            "pullgate test Fulcio intermediate",
            self.intermediate_key,
            self.root,
            self.root_key,
            ca_valid_days,
        )
        self.rekor = Log()
        self.ctlog = Log()

    def _ca_cert(
        self, cn: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any, days: int
    ) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pullgate tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.start + datetime.timedelta(days=days))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(issuer_key or key, hashes.SHA384())
        )

    # -- certificates ------------------------------------------------------------------------

    def leaf(
        self,
        *,
        email: str | None = "signer@acme.example",
        uri: str | None = None,
        issuer: str = "https://accounts.acme.example",
        extensions: dict[int, str] | None = None,
        sct: bool = True,
        not_before: datetime.datetime | None = None,
        minutes: int = 10,
    ) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)
        sans: list[x509.GeneralName] = []
        if email:
            sans.append(x509.RFC822Name(email))
        if uri:
            sans.append(x509.UniformResourceIdentifier(uri))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(minutes=minutes))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(FULCIO + "1"), issuer.encode()),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(FULCIO + "8"), _der_utf8(issuer)),
                critical=False,
            )
        )
        for n, value in sorted((extensions or {}).items()):
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(f"{FULCIO}{n}"),
                    _der_utf8(value) if n >= 8 else value.encode(),  # .2-.6 are raw, as Fulcio's
                ),
                critical=False,
            )
        if not sct:
            return Leaf(key, builder.sign(self.intermediate_key, hashes.SHA256()))
        # The precertificate is the certificate without the SCT list: sign its TBS as a CT log
        # would, then embed the SCT (RFC 6962 §3.3).
        precert = builder.sign(self.intermediate_key, hashes.SHA256())
        sct_bytes = self._sct(precert.tbs_certificate_bytes, int(start.timestamp() * 1000) + 1000)
        inner = struct.pack("!H", len(sct_bytes)) + sct_bytes
        sct_list = struct.pack("!H", len(inner)) + inner
        octet = bytes([0x04]) + _der_len(len(sct_list)) + sct_list
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_OID, octet), critical=False
        ).sign(self.intermediate_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return Leaf(key, cert)

    def _sct(self, tbs: bytes, timestamp_ms: int) -> bytes:
        issuer_key_hash = hashlib.sha256(_spki(self.intermediate.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ctlog.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        # SignedCertificateTimestamp: version, log id, timestamp, extensions, digitally-signed
        return (
            bytes([0])
            + self.ctlog.log_id
            + struct.pack("!Q", timestamp_ms)
            + struct.pack("!H", 0)
            + bytes([4, 3])  # sha256, ecdsa
            + struct.pack("!H", len(signature))
            + signature
        )

    # -- trust -------------------------------------------------------------------------------

    def trusted_root(
        self,
        path: Path,
        *,
        ca_end: datetime.datetime | None = None,
        with_ctlog: bool = True,
    ) -> Path:
        def log(entry: Log, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(entry.key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": _time(self.start)},
                },
                "logId": {"keyId": _b64(entry.log_id)},
            }

        valid: dict[str, str] = {"start": _time(self.start)}
        if ca_end is not None:
            valid["end"] = _time(ca_end)
        doc = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor, "https://rekor.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "pullgate tests", "commonName": "fulcio"},
                    "uri": "https://fulcio.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in (self.intermediate, self.root)
                        ]
                    },
                    "validFor": valid,
                }
            ],
            "ctlogs": [log(self.ctlog, "https://ctfe.test")] if with_ctlog else [],
            "timestampAuthorities": [],
        }
        path.write_text(json.dumps(doc, indent=1))
        return path

    def cosign_env(self, directory: Path) -> dict[str, str]:
        """Environment for `cosign verify` to trust this private Sigstore (classic flow)."""
        roots = directory / "fulcio-roots.pem"
        roots.write_bytes(
            self.intermediate.public_bytes(serialization.Encoding.PEM)
            + self.root.public_bytes(serialization.Encoding.PEM)
        )
        rekor = directory / "rekor.pub"
        rekor.write_bytes(_pem(self.rekor.key.public_key()))
        ct = directory / "ctlog.pub"
        ct.write_bytes(_pem(self.ctlog.key.public_key()))
        return {
            "SIGSTORE_ROOT_FILE": str(roots),
            "SIGSTORE_REKOR_PUBLIC_KEY": str(rekor),
            "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE": str(ct),
        }


def _der_len(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encrypt_cosign_key(key: Any, password: bytes = b"") -> bytes:
    """cosign's ENCRYPTED SIGSTORE PRIVATE KEY: JSON with scrypt parameters and a NaCl
    secretbox over the PKCS#8 DER key (the format `cosign generate-key-pair` writes)."""
    from nacl.secret import SecretBox
    from nacl.utils import random as nacl_random

    salt, nonce = os.urandom(32), nacl_random(SecretBox.NONCE_SIZE)
    n, r, p = 32768, 8, 1
    box_key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=1 << 28)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sealed = SecretBox(box_key).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    kind = "ENCRYPTED SIGSTORE PRIVATE KEY"
    return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n".encode()


# -- cosign, run for real ----------------------------------------------------------------------


@dataclass
class Cosign:
    binary: Path
    home: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.home,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(self.home),
                "COSIGN_PASSWORD": "",
                "COSIGN_YES": "true",
                "TUF_ROOT": str(self.home / "tuf"),
                **(env or {}),
            },
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"cosign {' '.join(args)} failed ({r.returncode}): {r.stderr[-3000:]}"
            )
        return r

    def key_pair(self, name: str) -> tuple[Path, Path]:
        """A cosign key pair made by cosign (encrypted private key, empty password)."""
        d = self.home / name
        d.mkdir(parents=True, exist_ok=True)
        self.run("generate-key-pair", f"--output-key-prefix={d}/cosign")
        return d / "cosign.key", d / "cosign.pub"

    def import_key(self, name: str, leaf: Leaf) -> Path:
        """The leaf's key in cosign's encrypted key format (cosign 2.5's import-key-pair
        refuses every EC key it is given here: "unsupported public key type")."""
        d = self.home / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "import.key").write_bytes(encrypt_cosign_key(leaf.key))
        return d / "import.key"

    def sign(self, ref: str, key: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.run(
            "sign",
            "--key",
            str(key),
            "--tlog-upload=false",
            "--allow-http-registry",
            "--allow-insecure-registry",
            *extra,
            ref,
            env=env,
        )

    def verify(
        self, ref: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "verify",
            "--allow-http-registry",
            "--allow-insecure-registry",
            *args,
            ref,
            env=env,
            check=False,
        )


# -- editing signatures in the registry ---------------------------------------------------------


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def read_signatures(registry: Registry, repo: str, digest: str) -> dict[str, Any]:
    status, _, body = registry._request(
        "GET",
        f"/v2/{repo}/manifests/{sig_tag(digest)}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert status == 200, status
    return json.loads(body)


def write_signatures(registry: Registry, repo: str, digest: str, manifest: dict[str, Any]) -> None:
    registry.push_manifest(repo, sig_tag(digest), json.dumps(manifest).encode())


def blob(registry: Registry, repo: str, digest: str) -> bytes:
    status, _, body = registry._request("GET", f"/v2/{repo}/blobs/{digest}")
    assert status == 200, status
    return body


def add_set(
    registry: Registry,
    repo: str,
    digest: str,
    log: Log,
    *,
    public_pem: bytes | None = None,
    integrated_time: int | None = None,
) -> None:
    """Log every signature of the image in ``log`` (a test Rekor) and attach the SET bundles."""
    manifest = read_signatures(registry, repo, digest)
    for i, layer in enumerate(manifest["layers"]):
        ann = layer["annotations"]
        payload = blob(registry, repo, layer["digest"])
        signer = public_pem or ann["dev.sigstore.cosign/certificate"].encode()
        doc = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
                },
                "signature": {
                    "content": ann["dev.cosignproject.cosign/signature"],
                    "publicKey": {"content": _b64(signer)},
                },
            },
        }
        when = integrated_time or int(datetime.datetime.now(UTC).timestamp())
        ann["dev.sigstore.cosign/bundle"] = json.dumps(
            log.entry(doc, when, index=i + 1), separators=(",", ":")
        )
    write_signatures(registry, repo, digest, manifest)


def push_signature_layer(
    registry: Registry, repo: str, digest: str, payload: bytes, annotations: dict[str, str]
) -> None:
    """A .sig manifest with one layer, as cosign writes it (for fixtures made elsewhere)."""
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": registry.push_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": SIG_MEDIA,
                "digest": registry.push_blob(repo, payload),
                "size": len(payload),
                "annotations": annotations,
            }
        ],
    }
    write_signatures(registry, repo, digest, manifest)


__all__ = [
    "Cosign",
    "Leaf",
    "Log",
    "PrivateSigstore",
    "add_set",
    "cosign_binary",
    "push_signature_layer",
    "sha256",
]
