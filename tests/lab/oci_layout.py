"""Upload OCI image layouts (an image with its Notation signatures) into a real registry the way
the CLI transcripts' uploader did: blobs, manifests by digest, tags, and a rebuilt
``sha256-<hex>`` referrers index (docker-registry 2.8 has no referrers API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .registry import OCI_INDEX, Registry


def layout_manifests(layout: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    """(digest, bytes, document) of every manifest of an OCI layout, in index.json's order
    first, then any other manifest among the blobs."""
    index = json.loads((layout / "index.json").read_text())
    ordered = [d["digest"] for d in index["manifests"]]
    for blob in sorted((layout / "blobs" / "sha256").iterdir()):
        if f"sha256:{blob.name}" not in ordered:
            ordered.append(f"sha256:{blob.name}")
    out = []
    for digest in ordered:
        data = (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if isinstance(doc, dict) and "schemaVersion" in doc and "mediaType" in doc:
            out.append((digest, data, doc))
    return out


def push_layouts(
    registry: Registry, repo: str, layouts: list[Path], *, reverse: bool = False
) -> list[str]:
    """Upload OCI layouts into ``repo`` as the CLI transcripts' uploader did: every blob, every
    manifest by digest, the image tag, and the ``sha256-<hex>`` referrers index rebuilt from the
    manifests' ``subject`` fields (the layouts' own indexes are not pushed). Returns the
    digests of the referrers, in the index's order."""
    referrers: dict[str, list[dict[str, Any]]] = {}
    for layout in layouts:
        for blob in sorted((layout / "blobs" / "sha256").iterdir()):
            registry.push_blob(repo, blob.read_bytes())
        for digest, data, doc in layout_manifests(layout):
            if doc["mediaType"] == OCI_INDEX:
                continue  # a referrers index: rebuilt below
            registry.push_manifest(repo, digest, data, doc["mediaType"])
            subject = doc.get("subject")
            if subject:
                entry: dict[str, Any] = {
                    "mediaType": doc["mediaType"],
                    "digest": digest,
                    "size": len(data),
                }
                if doc.get("annotations"):
                    entry["annotations"] = doc["annotations"]
                entry["artifactType"] = doc.get("artifactType") or doc["config"]["mediaType"]
                entries = referrers.setdefault(subject["digest"], [])
                if digest not in [e["digest"] for e in entries]:
                    entries.append(entry)
        index = json.loads((layout / "index.json").read_text())
        for descriptor in index["manifests"]:
            name = descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
            if name and not name.startswith("sha256-"):
                data = (layout / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes()
                registry.push_manifest(repo, name, data, descriptor["mediaType"])
    order: list[str] = []
    for subject, entries in referrers.items():
        if reverse:
            entries.reverse()
        registry.push_index(repo, subject.replace(":", "-", 1), entries)
        order += [e["digest"] for e in entries]
    return order
