"""Update a directory the way the kubelet updates a ConfigMap volume (atomic_writer.go):
write a new ``..<timestamp>`` directory, point a temporary symlink at it, rename that over
``..data``, make sure each key has a top-level symlink into ``..data``, remove the old dir."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

_counter = itertools.count()


def publish(root: Path, files: Mapping[str, str]) -> float:
    """Publish ``files``; returns the ``time.perf_counter()`` of the swap (the ``..data``
    rename), the moment the new content becomes visible."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    stamp = f"..2026_11_27_00_00_{next(_counter):06d}"
    (root / stamp).mkdir()
    for name, text in files.items():
        (root / stamp / name).write_text(text)
    tmp = root / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(stamp)
    os.replace(tmp, data)
    swapped = time.perf_counter()
    for name in files:
        link = root / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    for entry in root.iterdir():  # keys that are gone
        if entry.is_symlink() and not entry.name.startswith(".") and entry.name not in files:
            entry.unlink()
    if old is not None and old != stamp:
        shutil.rmtree(root / old)
    return swapped
