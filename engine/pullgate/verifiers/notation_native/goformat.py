"""Certificate names and times written as Go writes them, so reasons read as notation's do."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

# Go's pkix.Name.String() spells these attributes by name, in this order (reversed on output).
_GO_ORDER = (
    (NameOID.COUNTRY_NAME, "C"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STREET_ADDRESS, "STREET"),
    (NameOID.POSTAL_CODE, "POSTALCODE"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    (NameOID.COMMON_NAME, "CN"),
    (NameOID.SERIAL_NUMBER, "SERIALNUMBER"),
)
_GO_PARSED = {"2.5.4.3", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.9", "2.5.4.10", "2.5.4.11"}
_GO_PARSED.add("2.5.4.17")


def _go_rdns(name: x509.Name) -> list[list[tuple[str, str]]]:
    """The RDN sequence Go prints for ``name`` (before reversal), as (type, value) pairs."""
    rdns: list[list[tuple[str, str]]] = []
    attrs = list(name)
    names = dict(_GO_ORDER)
    for attr in attrs:  # attributes Go does not parse into fields come first
        dotted = attr.oid.dotted_string
        if dotted not in _GO_PARSED:
            rdns.append([(names.get(attr.oid, dotted), _value(attr))])
    for oid, label in _GO_ORDER:
        values = [_value(a) for a in attrs if a.oid == oid]
        if oid in (NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER):
            values = values[-1:]  # Go keeps one
        if values:
            rdns.append([(label, v) for v in values])
    return rdns


def _value(attr: x509.NameAttribute[Any]) -> str:
    value = attr.value
    return value if isinstance(value, str) else value.decode("latin-1")


def _go_escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        escape = ch in ',+"\\<>;' or (ch == " " and i in (0, len(value) - 1))
        escape = escape or (ch == "#" and i == 0)
        out.append("\\" + ch if escape else ch)
    return "".join(out)


def _go_name(name: x509.Name) -> str:
    """``name`` as Go's ``pkix.Name.String()`` writes it (what notation's messages show)."""
    rdns = _go_rdns(name)
    return ",".join("+".join(f"{t}={_go_escape(v)}" for t, v in rdn) for rdn in reversed(rdns))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc1123z(when: datetime) -> str:
    """Go's ``time.RFC1123Z`` (in ``when``'s own offset), as notation's messages show times."""
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return (
        f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {zone}"
    )
