"""Programs from newer Debian suites, fetched without touching the system's apt sources.

A private sources list, package lists and cache live in the tools cache
(``$PULLGATE_TOOLS_CACHE``, default ``~/.cache/pullgate/tools``); the package is downloaded and
unpacked with ``dpkg-deb -x``. Nothing is installed. Run ``python tests/lab/tools.py PKG
SUITE`` to fetch one by hand.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import subprocess
import sys
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "pullgate" / "tools"
    return Path(os.environ.get("PULLGATE_TOOLS_CACHE", default))


def debian_package(package: str, suite: str) -> Path:
    """The root of ``package`` from ``suite`` unpacked (``.../usr/bin/...`` below it)."""
    base = cache_dir() / suite
    root = base / "pkgs" / package
    if (root / ".complete").exists():
        return root
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download at a time
        if (root / ".complete").exists():
            return root
        lists, cache = base / "lists", base / "cache"
        for d in (lists / "partial", cache / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        sources = base / "sources.list"
        sources.write_text(f"deb {MIRROR} {suite} main\n")
        opts = [
            f"-oDir::Etc::SourceList={sources}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={lists}",
            f"-oDir::Cache={cache}",
            f"-oAPT::Sandbox::User={getpass.getuser()}",
            "-oDebug::NoLocking=1",
            "-q",
        ]
        _run(["apt-get", *opts, "update"], base)
        downloads = base / "downloads"
        downloads.mkdir(exist_ok=True)
        for old in downloads.glob(f"{package}_*.deb"):
            old.unlink()
        _run(["apt-get", *opts, "download", package], downloads)
        (deb,) = downloads.glob(f"{package}_*.deb")
        root.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(root)], base)
        (root / ".complete").write_text(deb.name + "\n")
    return root


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if r.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:1] + cmd[-2:])} failed ({r.returncode}): {r.stderr[-2000:]}"
        )


if __name__ == "__main__":
    print(debian_package(sys.argv[1], sys.argv[2]))
