"""The two pullgate.v1 messages pullgate-containerd exchanges, in protobuf wire format by hand.

Importing the protobuf runtime costs ~20 ms on every pull; these few fields do not need it.
``tests/test_grpclite.py`` checks both directions against the generated classes.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs ~5 ms on every pull. Type checkers treat
# any TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["WireError", "decode_verify_response", "encode_verify_request"]


class WireError(Exception):
    """Bytes that are not the message they claim to be."""


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are ten-byte two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, value: str) -> bytes:
    return _bytes_field(number, value.encode()) if value else b""  # proto3 omits defaults


def _map(number: int, values: Mapping[str, str]) -> bytes:
    return b"".join(_bytes_field(number, _string(1, k) + _string(2, v)) for k, v in values.items())


def encode_verify_request(
    *,
    image_name: str,
    media_type: str,
    digest: str,
    size: int,
    descriptor_annotations: Mapping[str, str],
    artifact_type: str,
    operation: str,
    namespace: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    pod_name: str,
    pod_uid: str,
) -> bytes:
    descriptor = (
        _string(1, media_type)
        + _string(2, digest)
        + (_varint(3 << 3) + _varint(size) if size else b"")
        + _map(4, descriptor_annotations)
        + _string(5, artifact_type)
    )
    return (
        _string(1, image_name)
        + _bytes_field(2, descriptor)
        + _string(3, operation)
        + _string(4, namespace)
        + _map(5, annotations)
        + _map(6, labels)
        + _string(7, pod_name)
        + _string(8, pod_uid)
    )


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_verify_response(data: bytes) -> dict[str, object]:
    """``ok``, ``reason``, ``decision_id``, ``policy_revision`` and ``code``; other fields are
    skipped."""
    out: dict[str, object] = {
        "ok": False,
        "reason": "",
        "decision_id": "",
        "policy_revision": "",
        "code": "",
    }
    names = {2: "reason", 3: "decision_id", 4: "policy_revision", 8: "code"}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if number == 1:
                out["ok"] = value != 0
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated field")
            if number in names:
                out[names[number]] = data[pos : pos + length].decode("utf-8", "replace")
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")
    if pos != len(data):
        raise WireError("truncated field")
    return out
