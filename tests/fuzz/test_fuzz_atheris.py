"""The optional coverage-guided harness (atheris), skipped where atheris is not installed.

It runs as its own process: libFuzzer ends the process it runs in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES

pytest.importorskip("atheris")

HARNESS = Path(__file__).with_name("atheris_reference.py")
SEEDS = [
    "nginx",
    "ghcr.io/acme/app:v1.2.3@sha256:" + "0123456789abcdef" * 4,
    "[::1]:5000/app:tag",
    "localhost:5000/a__b/c---d/e.f:TAG_1",
]


def test_atheris_finds_nothing_in_references(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(b"\x00\x00\x00\x00\x00\x00\x02\x58" + seed.encode())
    r = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-runs={EXAMPLES}",
            "-max_total_time=300",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Done {EXAMPLES} runs" in r.stderr, r.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
