"""gRPC Verify over the unix socket under load: 16 concurrent clients against a warm daemon.

Two cases, each for a fixed time:
- "repeat pulls": the same few images over and over (what a node sees when a deployment
  scales out); within `cache.judgementTtl` these are judgement-cache hits;
- "distinct requests": every call a different pod of a different namespace (the judgement
  cache misses every time, so every call runs selection and the CEL rules).
The policies need no registry (rules over the image and the pod), so the figure is pullgate's
own cost. The peer, measured in the same run, is an empty unary RPC (grpc health Check) with
the same clients: the floor of any gRPC service in Python on this machine.

Run: .venv/bin/python bench/grpc_load.py [--seconds 10] [--clients 16]
     [--engines cel-python,cel-expr]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import p50_p99
from lab.daemon import start_daemon
from pullgate.v1 import verifier_pb2 as pb
from pullgate.v1 import verifier_pb2_grpc as pb_grpc

DIGEST = "sha256:" + "d" * 64
POLICIES = """apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: team-images}
spec:
  images: ["ghcr.io/acme/**"]
  rules:
    - name: team-label
      expr: 'request.operation != "run" || has(request.pod.labels.team)'
    - name: not-debug
      expr: 'image.tag != "debug" || request.namespace.startsWith("dev-")'
---
apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: prod}
spec:
  images: ["ghcr.io/acme/*"]
  namespaces: ["prod-*"]
  rules:
    - name: pinned
      expr: 'request.operation != "run" || image.digest != ""'
"""


def run(
    clients: int, seconds: float, make: Callable[[int], Callable[[], object]]
) -> tuple[int, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = threading.Event()

    def client(i: int) -> None:
        call = make(i)
        own = latencies[i]
        while not stop.is_set():
            t = time.perf_counter()
            call()
            own.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    flat = [x for own in latencies for x in own]
    return len(flat), flat


def report(label: str, count: int, samples: list[float], seconds: float, peer: float) -> float:
    p50, p99 = p50_p99(samples)
    rate = count / seconds
    print(f"{label:<56} {rate:9.0f} {p50:8.2f} {p99:8.2f} {rate / peer if peer else 1:8.2f}")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--engines", default="cel-python,cel-expr")
    args = parser.parse_args()
    version = sys.version.split()[0]
    print(f"python {version}; {args.clients} clients; {args.seconds:.0f} s per case")
    print(f"{'case':<56} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x peer':>8}")
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            measure(Path(tmp), engine, args.clients, args.seconds)
    return 0


def measure(root: Path, engine: str, clients: int, seconds: float) -> None:
    (root / "policies").mkdir()
    (root / "policies" / "p.yaml").write_text(POLICIES)
    config = f"log: {{format: text}}\ncel: {{engine: {engine}}}\n"
    daemon = start_daemon(root / "d", root / "policies", config=config)
    try:
        channel = daemon.channel()
        verify = pb_grpc.ImageVerifierStub(channel).Verify
        health = health_pb2_grpc.HealthStub(channel).Check
        counter = itertools.count()

        def repeat(i: int) -> Callable[[], object]:
            request = pb.VerifyRequest(
                image_name=f"ghcr.io/acme/app-{i % 4}:v1",
                descriptor=pb.Descriptor(digest=DIGEST),
            )
            return lambda: verify(request, timeout=10)

        def distinct(i: int) -> Callable[[], object]:
            def call() -> object:
                n = next(counter)
                request = pb.VerifyRequest(
                    image_name=f"ghcr.io/acme/app-{n % 50}:v1",
                    descriptor=pb.Descriptor(digest=DIGEST),
                    operation="run",
                    namespace=f"prod-{n % 7}",
                    labels={"team": "a"},
                    pod_name=f"pod-{n}",
                )
                return verify(request, timeout=10)

            return call

        empty = health_pb2.HealthCheckRequest(service="pullgate.v1.ImageVerifier")
        for make in (repeat, distinct):  # warm up
            run(clients, 1.0, make)
        count, samples = run(clients, seconds, lambda i: lambda: health(empty, timeout=10))
        peer = report(f"{engine}: peer: empty RPC (health Check)", count, samples, seconds, 0)
        count, samples = run(clients, seconds, repeat)
        report(f"{engine}: Verify, repeat pulls (judgement cache)", count, samples, seconds, peer)
        count, samples = run(clients, seconds, distinct)
        report(f"{engine}: Verify, distinct requests (evaluated)", count, samples, seconds, peer)
    finally:
        daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
