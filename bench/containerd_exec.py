"""pullgate-containerd exec-to-exit with a warm daemon, as containerd runs it once per pull.

Peers measured in the same run with the same interpreter: `python -c pass` (the floor of any
Python program) and `python -c 'import grpc'` (the floor of any Python gRPC client).
Also: one Verify over the same unix socket from a warm client (the daemon's share).

Run: .venv/bin/python bench/containerd_exec.py [--runs 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import p50_p99, timed
from lab.daemon import BIN, DIGEST, start_daemon

POLICY = """apiVersion: pullgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: bench}
spec:
  images: ["ghcr.io/acme/**"]
  rules:
    - name: tag
      expr: 'image.tag != "debug"'
"""
DESCRIPTOR = (
    f'{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{DIGEST}","size":1234}}\n'
)


def pb_file() -> str:
    import pullgate

    return str(pullgate.__file__)


def run_exec(
    cmd: list[str], runs: int, stdin: bytes = b"", env: dict[str, str] | None = None
) -> list[float]:
    """Exec-to-exit durations of ``cmd``; three untimed runs first warm the page cache."""

    def once() -> None:
        r = subprocess.run(cmd, input=stdin, capture_output=True, env=env, check=False)
        assert r.returncode in (0, 1), r.stdout + r.stderr

    timed(once, 3)
    return timed(once, runs)


def row(label: str, samples: list[float], floor: float) -> None:
    p50, p99 = p50_p99(samples)
    print(f"{label:<48} {p50:8.1f} {p99:8.1f} {p50 / floor:8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    python = str(BIN / "python")
    # As installed on a node: byte-compiled (this machine sets PYTHONDONTWRITEBYTECODE=1).
    subprocess.run([python, "-m", "compileall", "-q", str(Path(pb_file()).parent)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "policies").mkdir()
        (root / "policies" / "p.yaml").write_text(POLICY)
        daemon = start_daemon(root / "d", root / "policies")
        try:
            floor = run_exec([python, "-c", "pass"], args.runs)
            grpc_floor = run_exec([python, "-c", "import grpc"], args.runs)
            shim = run_exec(
                [
                    str(BIN / "pullgate-containerd"),
                    "-name",
                    "ghcr.io/acme/app:v1",
                    "-digest",
                    DIGEST,
                    "-stdin-media-type",
                    "application/vnd.oci.descriptor.v1+json",
                ],
                args.runs,
                DESCRIPTOR.encode(),
                {"PULLGATE_ADDRESS": daemon.address, "PATH": "/usr/bin:/bin"},
            )
            stub = daemon.stub()
            from pullgate.v1 import verifier_pb2 as pb

            request = pb.VerifyRequest(
                image_name="ghcr.io/acme/app:v1", descriptor=pb.Descriptor(digest=DIGEST)
            )
            rpc = timed(lambda: stub.Verify(request, timeout=5), args.runs * 5)
        finally:
            daemon.stop()
    base = p50_p99(floor)[0]
    print(f"python {sys.version.split()[0]}; {args.runs} runs each; ratios to `python -c pass`")
    print(f"{'case':<48} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
    row("peer: python -c pass", floor, base)
    row("peer: python -c 'import grpc'", grpc_floor, base)
    row("pullgate-containerd exec-to-exit (warm daemon)", shim, base)
    row("one Verify RPC from a warm client", rpc, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
