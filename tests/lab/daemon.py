"""The pullgate daemon as a real subprocess on a temp unix socket, and clients for it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pullgate.v1 import verifier_pb2 as pb
from pullgate.v1 import verifier_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
DIGEST = "sha256:" + "d" * 64


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    socket: Path
    log: Path
    config: Path
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(self.address)
        self.channels.append(channel)
        return channel

    def stub(self) -> pb_grpc.ImageVerifierStub:
        return pb_grpc.ImageVerifierStub(self.channel())

    def verify(self, image: str, digest: str = DIGEST, **fields: Any) -> pb.VerifyResponse:
        request = pb.VerifyRequest(
            image_name=image, descriptor=pb.Descriptor(digest=digest), **fields
        )
        return self.stub().Verify(request, timeout=10)

    def health(self, service: str = "pullgate.v1.ImageVerifier") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel())
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def events(self) -> list[dict[str, Any]]:
        """The daemon's log lines, once they stop growing (it writes from a background thread)."""
        text, deadline = self.log.read_text(), time.monotonic() + 2
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = self.log.read_text()
            if again == text:
                break
            text = again
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        for channel in self.channels:
            channel.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_daemon(
    tmp: Path,
    policies: Path,
    *,
    config: str = "",
    serving: bool = True,
    listen: list[str] | None = None,
    env: dict[str, str] | None = None,
    reload: str = "{debounce: 50ms, interval: 2s}",
    ready_timeout: float = 20,
) -> Daemon:
    """Start ``pullgate serve``; wait until it is SERVING (or, if not ``serving``, listening)."""
    tmp.mkdir(parents=True, exist_ok=True)
    sock = tmp / "run" / "pullgate.sock"
    config_path = tmp / "pullgate.yaml"
    addresses = listen or [f"unix://{sock}"]
    config_path.write_text(
        f"listen: {json.dumps(addresses)}\npolicies: {policies}\n"
        f"reload: {reload}\n"
        + ("" if "server:" in config else "server: {drain: 2s}\n")
        + ("" if "stateDir:" in config else f"stateDir: {tmp / 'state'}\n")
        + config
    )
    log = tmp / "daemon.log"
    process = subprocess.Popen(
        [str(BIN / "pullgate"), "serve", "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )
    daemon = Daemon(process, sock, log, config_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pullgate serve exited {process.returncode}: {log.read_text()}")
        if not addresses[0].startswith("unix://"):
            if '"event":"serving"' in log.read_text():
                return daemon
        elif sock.exists():
            if not serving:
                return daemon
            try:
                if daemon.health() == health_pb2.HealthCheckResponse.SERVING:
                    return daemon
            except grpc.RpcError:
                pass
        time.sleep(0.05)
    daemon.stop(signal.SIGKILL)
    raise RuntimeError(f"pullgate serve did not become ready: {log.read_text()}")
