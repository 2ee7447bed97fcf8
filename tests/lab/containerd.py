"""A real containerd 2.x (Debian sid's package, unpacked into the tools cache) with pullgate's
sample bin_dir wrapper and config stanza, pointed at a test daemon."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .daemon import BIN
from .tools import debian_package

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "containerd"


@dataclass
class Containerd:
    ctr: Path
    address: Path
    process: subprocess.Popen[bytes]
    log: Path
    root: Path

    def pull(self, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.ctr),
                "--address",
                str(self.address),
                "image",
                "pull",
                "--plain-http",
                *extra,
                ref,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.root / "root", ignore_errors=True)


def start_containerd(tmp: Path, daemon_address: str) -> Containerd:
    package = debian_package("containerd", "sid")
    verifiers = tmp / "verifiers"
    verifiers.mkdir(parents=True)
    # The sample wrapper, pointed at this venv and this daemon.
    wrapper = (SAMPLES / "pullgate").read_text()
    wrapper = wrapper.replace("/opt/pullgate/venv/bin/", f"{BIN}/").replace(
        "unix:///run/pullgate/pullgate.sock", daemon_address
    )
    (verifiers / "pullgate").write_text(wrapper)
    (verifiers / "pullgate").chmod(0o755)
    sample = (SAMPLES / "pullgate-verifier.toml").read_text()
    config = tmp / "config.toml"
    config.write_text(
        f'version = 3\nroot = "{tmp}/root"\nstate = "{tmp}/state"\n'
        f'[grpc]\n  address = "{tmp}/containerd.sock"\n\n'
        + sample.split("version = 3", 1)[1].replace("/opt/pullgate/verifiers", str(verifiers))
    )
    log = tmp / "containerd.log"
    process = subprocess.Popen(
        [str(package / "usr/bin/containerd"), "--config", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    sock = tmp / "containerd.sock"
    deadline = time.monotonic() + 20
    while not sock.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"containerd did not start: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    return Containerd(package / "usr/bin/ctr", sock, process, log, tmp)
