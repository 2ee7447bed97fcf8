"""A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1,
and images built with the standard library and pushed through the distribution API."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    root: Path
    auth: tuple[str, str] | None = field(default=None, repr=False)  # basic auth for pushes

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else self.url + path
        headers = dict(headers or {})
        if self.auth is not None:
            user, password = self.auth
            headers["Authorization"] = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        status, headers, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, status
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        status, _, body = self._request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)
        return digest

    def push_manifest(
        self, repo: str, ref: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        status, _, body = self._request(
            "PUT", f"/v2/{repo}/manifests/{ref}", manifest, {"Content-Type": media_type}
        )
        assert status == 201, (status, body)
        return sha256(manifest)

    def push_image(self, repo: str, tag: str, content: str = "hello") -> str:
        """Push a one-layer OCI image; return its manifest digest."""
        return self.push_manifest(repo, tag, self._image_manifest(repo, content, OCI_MANIFEST))

    def push_docker_image(self, repo: str, tag: str, content: str = "hello") -> str:
        """Push a one-layer image with Docker v2 schema 2 media types; return its digest."""
        manifest = self._image_manifest(repo, content, DOCKER_MANIFEST)
        return self.push_manifest(repo, tag, manifest, DOCKER_MANIFEST)

    def push_index(
        self, repo: str, tag: str, manifests: list[dict[str, object]], media_type: str = OCI_INDEX
    ) -> str:
        """Push an index (OCI) or manifest list (Docker) of the given descriptors."""
        index = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        return self.push_manifest(repo, tag, json.dumps(index).encode(), media_type)

    def _image_manifest(self, repo: str, content: str, media_type: str) -> bytes:
        """Push the config and layer of a one-layer image; return its manifest (not pushed)."""
        docker = media_type == DOCKER_MANIFEST
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = content.encode()
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [sha256(raw.getvalue())]},
            }
        ).encode()
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {
                    "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                    "digest": self.push_blob(repo, config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                        "digest": self.push_blob(repo, layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    """An htpasswd file with bcrypt entries: docker-registry answers 401 to MD5 (``$apr1$``)."""
    import bcrypt  # the `test` extra; imported here so registries without auth do not need it

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
        for user, password in users.items()
    ]
    path.write_text("".join(lines))


def start_registry(root: Path, htpasswd: Mapping[str, str] | None = None) -> Registry:
    """Start docker-registry on a free loopback port, storing under ``root``.

    With ``htpasswd`` ({user: password}) the registry requires basic auth (realm
    ``pullgate-tests``); the returned Registry pushes as the first user.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError(
            "docker-registry is not installed: `make test` installs it "
            "(apt-get install docker-registry)"
        )
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    auth = ""
    if htpasswd:
        write_htpasswd(root / "htpasswd", htpasswd)
        auth = f"auth: {{htpasswd: {{realm: pullgate-tests, path: {root / 'htpasswd'}}}}}\n"
    config.write_text(
        f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root / "data"}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
  secret: pullgate-tests
{auth}"""
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [binary, "serve", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )
    first_user = next(iter(htpasswd.items())) if htpasswd else None
    registry = Registry(f"127.0.0.1:{port}", process, root, first_user)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited: {(root / 'registry.log').read_text()[-2000:]}"
            )
        try:
            status, _, _ = registry._request("GET", "/v2/")
            if status == 200:
                return registry
        except OSError:
            pass
        time.sleep(0.05)
    registry.stop()
    raise RuntimeError("docker-registry did not answer on /v2/ within 10 s")
