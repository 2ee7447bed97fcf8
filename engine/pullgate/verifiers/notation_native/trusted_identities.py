"""The authority's trusted identities: ``*`` or ``x509.subject: <DN>`` entries, parsed as
go-ldap parses them and matched against the signing certificate's subject as Notation does."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509

from .errors import NotationProblem
from .goformat import _go_name, _go_rdns

_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")

# -- trusted identities (Notation's x509.subject subset match) --------------------------------


def _dn_map(rdns: list[list[tuple[str, str]]], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in rdns:
        if len(rdn) > 1:
            raise NotationProblem(f"{what} has a multi-valued RDN, which Notation does not support")
        kind, value = rdn[0]
        kind = kind.upper()
        if kind in out:
            raise NotationProblem(f"{what} has more than one {kind} attribute")
        out[kind] = value
    missing = [k for k in ("C", "ST", "O") if not out.get(k)]
    if missing:
        raise NotationProblem(f"{what} lacks {', '.join(missing)}, which Notation requires")
    return out


def _parse_dn(text: str) -> list[list[tuple[str, str]]]:
    """An RFC 4514 distinguished name, as go-ldap's ParseDN reads it."""
    rdns: list[list[tuple[str, str]]] = [[]]
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"no '=' after {text[i:][:40]!r}")
        kind = text[i:eq].strip()
        if not kind:
            raise ValueError("an attribute type is empty")
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        value, i, sep = _dn_value(text, i)
        rdns[-1].append((kind, value))
        if sep == "+":
            continue
        if sep:
            rdns.append([])
    if not rdns[-1]:
        if len(rdns) > 1:
            raise ValueError("the name ends with a separator")
        raise ValueError("the name is empty")
    return rdns


def _dn_value(text: str, i: int) -> tuple[str, int, str]:
    """One attribute value from ``i``: (value, index after its separator, the separator)."""
    n = len(text)
    if i < n and text[i] == "#":
        j = i + 1
        while j < n and text[j] not in ",;+":
            j += 1
        return _ber_string(text[i + 1 : j].strip()), j + 1, text[j] if j < n else ""
    out = bytearray()
    trailing_spaces = 0  # unescaped spaces at the end are not part of the value
    quoted = i < n and text[i] == '"'
    if quoted:
        i += 1
    while i < n:
        ch = text[i]
        if quoted and ch == '"':
            quoted = False
            i += 1
            while i < n and text[i] == " ":
                i += 1
            break
        if not quoted and ch in ",;+":
            break
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError("the name ends with a backslash")
            nxt = text[i + 1]
            if nxt in '\\ #+,;<=>"':
                out += nxt.encode()
                i += 2
            elif _HEX2.fullmatch(text[i + 1 : i + 3]):
                out.append(int(text[i + 1 : i + 3], 16))
                i += 3
            else:
                raise ValueError(f"bad escape {text[i : i + 3]!r}")
            trailing_spaces = 0
            continue
        out += ch.encode()
        trailing_spaces = trailing_spaces + 1 if ch == " " else 0
        i += 1
    if quoted:
        raise ValueError("an unterminated quoted value")
    if trailing_spaces:
        del out[-trailing_spaces:]
    if i < n and text[i] not in ",;+":
        raise ValueError(f"unexpected {text[i]!r} after a quoted value")
    sep = text[i] if i < n else ""
    return out.decode("utf-8", "replace"), i + 1, sep


def _ber_string(hexed: str) -> str:
    """The string inside a ``#``-hex BER value (a tag, a short or long length, then content)."""
    raw = bytes.fromhex(hexed)
    if len(raw) < 2:
        raise ValueError("a #hex value is too short")
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[offset : offset + length].decode("utf-8", "replace")


@lru_cache(maxsize=256)
def _identity_map(identity: str) -> dict[str, str]:
    prefix, sep, value = identity.partition(":")
    if not sep or prefix.strip() != "x509.subject" or not value.strip():
        raise NotationProblem(
            f"trusted identity {identity[:80]!r} is not '*' or 'x509.subject: <DN>'"
        )
    try:
        rdns = _parse_dn(value.strip())
    except ValueError as exc:
        raise NotationProblem(
            f"trusted identity {identity[:80]!r} is not an RFC 4514 name: {exc}"
        ) from None
    return _dn_map(rdns, f"trusted identity {identity[:80]!r}")


def _identity(leaf: x509.Certificate, identities: Sequence[str]) -> str:
    if "*" in identities:
        return ""
    wanted = [_identity_map(i) for i in identities]
    if not wanted:
        return "this authority lists no trusted identities"
    try:
        have = _dn_map(_go_rdns(leaf.subject), "the signing certificate's subject")
    except NotationProblem as exc:
        return str(exc)
    for entry in wanted:
        if all(have.get(k) == v for k, v in entry.items()):
            return ""
    listed = " ".join(
        "map[" + " ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(e.items())) + "]"
        for e in wanted
    )
    return (
        f'signing certificate "{_go_name(leaf.subject)}" from the digital signature does not '
        f"match the X.509 trusted identities [{listed}] of this authority"
    )
