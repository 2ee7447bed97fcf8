"""Debian trixie's skopeo 1.18, a second independent verifier of cosign signatures.

Bookworm's own skopeo is built with sigstore disabled ("Debian-local change: sigstore
disabled"), so this fetches trixie's ``skopeo`` and the trixie libraries it links against
(``libc6``, ``libgpgme11t64``, ``libassuan9``, ``libgpg-error0``, ``libsqlite3-0``) into the
tools cache with :func:`lab.tools.debian_package`, and runs it through trixie's own loader:
``ld-linux-x86-64.so.2 --library-path <the trixie lib dirs> skopeo ...``. Nothing is installed.

Verifying means ``skopeo copy --policy P docker://REF dir:DEST``: a containers ``policy.json``
that rejects everything except the repository, which needs a ``sigstoreSigned`` signature by the
key (``signedIdentity: matchRepository``), and a ``registries.d`` that turns on
``use-sigstore-attachments`` for the registry. ``skopeo inspect`` does not enforce a policy;
``copy`` does (and so also downloads the image's config and layers).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .tools import debian_package

SUITE = "trixie"
MULTIARCH = "usr/lib/x86_64-linux-gnu"
# What trixie's skopeo needs at run time (DT_NEEDED, followed through): libgpgme.so.11 ->
# libassuan.so.9, libgpg-error.so.0; libsqlite3.so.0; libc.so.6, libm.so.6 and the loader.
LIBRARIES = ("libc6", "libgpgme11t64", "libassuan9", "libgpg-error0", "libsqlite3-0")


def skopeo_command() -> list[str]:
    """The argv prefix that runs trixie's skopeo: its loader, the library path, the binary.

    Fetches the packages on first use; raises RuntimeError when they cannot be fetched (no
    network to deb.debian.org) or the unpacked files are not where they are expected.
    """
    binary = debian_package("skopeo", SUITE) / "usr/bin/skopeo"
    libs = [debian_package(package, SUITE) / MULTIARCH for package in LIBRARIES]
    loader = libs[0] / "ld-linux-x86-64.so.2"
    for path in (binary, loader, *libs):
        if not path.exists():
            raise RuntimeError(f"{path} is missing from the unpacked trixie packages")
    return [str(loader), "--library-path", ":".join(str(lib) for lib in libs), str(binary)]


@dataclass(frozen=True)
class SigstorePolicy:
    """A containers policy.json and registries.d (and an empty registries.conf)."""

    policy: Path
    registries_d: Path
    registries_conf: Path


def write_sigstore_policy(
    directory: Path, host: str, repository: str, public_key: Path
) -> SigstorePolicy:
    """Files under ``directory`` that let skopeo accept ``host/repository`` only when it carries
    a cosign (sigstore) signature by ``public_key``; every other image is rejected."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                f"{host}/{repository}": [
                    {
                        "type": "sigstoreSigned",
                        "keyPath": str(public_key),
                        "signedIdentity": {"type": "matchRepository"},
                    }
                ]
            }
        },
    }
    policy_file = directory / "policy.json"
    policy_file.write_text(json.dumps(policy, indent=2) + "\n")
    registries_d = directory / "registries.d"
    registries_d.mkdir(exist_ok=True)
    # JSON is YAML; the key is the registry (host:port), as the policy's scopes are.
    (registries_d / "sigstore.yaml").write_text(
        json.dumps({"docker": {host: {"use-sigstore-attachments": True}}}) + "\n"
    )
    conf = directory / "registries.conf"
    conf.write_text("")  # no mirrors, no search registries: nothing from the host's config
    return SigstorePolicy(policy_file, registries_d, conf)


@dataclass
class Skopeo:
    command: list[str]  # skopeo_command()
    home: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.home,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(self.home),
                "XDG_RUNTIME_DIR": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
            },
        )
        if check and r.returncode != 0:
            raise RuntimeError(
                f"skopeo {' '.join(args)} failed ({r.returncode}): {r.stderr[-3000:]}"
            )
        return r

    def version(self) -> str:
        """``skopeo version 1.18.0``; raises RuntimeError when skopeo does not run."""
        return self.run("--version").stdout.strip()

    def copy(
        self, policy: SigstorePolicy, ref: str, dest: Path
    ) -> subprocess.CompletedProcess[str]:
        """``skopeo copy`` of ``ref`` (host/repo@digest, plain HTTP) into ``dir:dest`` under the
        policy: return code 0 only when the policy accepts the image."""
        return self.run(
            "--policy",
            str(policy.policy),
            "--registries.d",
            str(policy.registries_d),
            "--registries-conf",
            str(policy.registries_conf),
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--src-no-creds",
            f"docker://{ref}",
            f"dir:{dest}",
            check=False,
        )


__all__ = ["SigstorePolicy", "Skopeo", "skopeo_command", "write_sigstore_policy"]
