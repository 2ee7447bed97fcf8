"""The signed payload: the ``targetArtifact`` it must hold, and that it names the image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .envelope import _json_object
from .errors import NotationProblem


def _parse_payload(raw: bytes) -> dict[str, Any]:
    doc = _json_object(raw, "the signed payload")
    target = doc.get("targetArtifact")
    if not isinstance(target, dict):
        raise NotationProblem("the signed payload has no targetArtifact descriptor")
    media_type, digest, size = target.get("mediaType"), target.get("digest"), target.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise NotationProblem("the signed targetArtifact has no mediaType")
    if not isinstance(digest, str) or not digest:
        raise NotationProblem("the signed targetArtifact has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise NotationProblem("the signed targetArtifact has no valid size")
    annotations = target.get("annotations", {})
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise NotationProblem("the signed targetArtifact annotations are not strings")
    return {"mediaType": media_type, "digest": digest, "size": size, "annotations": annotations}


def _check_target(payload: Mapping[str, Any], descriptor: Mapping[str, Any]) -> None:
    signed = (payload["mediaType"], payload["digest"], payload["size"])
    wanted = (descriptor.get("mediaType"), descriptor.get("digest"), descriptor.get("size"))
    if signed == wanted:
        return
    types = signed[0] != wanted[0]
    signed_text = f"{signed[1][:80]} (size {signed[2]}{', ' + signed[0][:80] if types else ''})"
    wanted_text = f"{wanted[1]} (size {wanted[2]}{', ' + str(wanted[0]) if types else ''})"
    raise NotationProblem(f"the signature is for {signed_text}, not for this image {wanted_text}")
