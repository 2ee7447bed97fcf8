"""Turn located YAML documents into validated models, collecting every issue on the way.

Each check says what is wrong and what to write instead. Validation never stops at the first
problem: a reviewer sees every issue of a revision at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from ..evidence import Evidence, Signature
from ..reference import InvalidReference, parse_digest, parse_reference
from ..request import OPERATIONS, Descriptor, Request
from .errors import Issue, Mark
from .model import (
    API_VERSION,
    Authority,
    AuthoritySpec,
    Expect,
    ImagePolicy,
    KeyAuthority,
    KeylessAuthority,
    NotationAuthority,
    PolicyTest,
    Rule,
    TestCase,
)
from .reader import DNS_LABEL, FileReader, Reader
from .source import Node

__all__ = ["Document", "read_document"]

KINDS = ("ImagePolicy", "PolicyTest")

Document = ImagePolicy | PolicyTest


# -- ImagePolicy ----------------------------------------------------------------------------


def _key(r: Reader, node: Node, what: str) -> KeyAuthority | None:
    fields = r.mapping(node, what, allowed=("publicKey", "path", "tlog", "trustedRoot"))
    if fields is None:
        return None
    root = _trusted_root(r, fields, what)
    tlog = (
        r.choice(fields["tlog"], f"{what}.tlog", ("required", "optional"))
        if "tlog" in fields
        else "optional"
    )
    source = r.pem(fields, node, what, "publicKey")
    if source is None or tlog is None or root is None:
        return None
    data, where = source
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        r.fail(
            where.mark,
            f"{what}: not a PEM public key; paste the output of 'cosign public-key' "
            "(-----BEGIN PUBLIC KEY----- ...)",
        )
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            r.fail(
                where.mark,
                f"{what}: EC curve {key.curve.name} is not supported; use P-256 or P-384",
            )
            return None
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            r.fail(
                where.mark, f"{what}: RSA key of {key.key_size} bits is too weak; use at least 2048"
            )
            return None
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        r.fail(
            where.mark,
            f"{what}: {type(key).__name__} keys are not supported; use ECDSA, RSA or Ed25519",
        )
        return None
    # Re-encoded, so the same key written with other line endings or wrapping is one authority.
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return KeyAuthority(public_key=pem, tlog=tlog, trusted_root=root)  # type: ignore[arg-type]


def _one_of(
    r: Reader, fields: dict[str, Node], node: Node, what: str, exact: str, regexp: str
) -> tuple[str, str] | None:
    if (exact in fields) == (regexp in fields):
        r.fail(
            node.mark, f"{what} needs exactly one of {exact!r} (exact match) or {regexp!r} (RE2)"
        )
        return None
    if exact in fields:
        value = r.string(fields[exact], f"{what}.{exact}")
        return (value, "") if value is not None else None
    value = r.regexp(fields[regexp], f"{what}.{regexp}")
    if value is not None and not (value.startswith("^") and value.endswith("$")):
        r.fail(
            fields[regexp].mark,
            f"{what}.{regexp} {value!r} is not anchored; RE2 matches anywhere in the identity, "
            "so write '^...$'",
        )
        return None
    return ("", value) if value is not None else None


def _trusted_root(r: Reader, fields: dict[str, Node], what: str) -> str | None:
    """``production`` (default), ``staging``, or a trusted_root.json, kept as an absolute path."""
    if "trustedRoot" not in fields:
        return "production"
    node = fields["trustedRoot"]
    value = r.string(node, f"{what}.trustedRoot")
    if value is None or value in ("production", "staging"):
        return value
    found = r.read_file(value, node.mark)
    if found is None:
        return None
    try:
        doc = json.loads(found[0])
        if not isinstance(doc, dict) or not isinstance(doc.get("tlogs", []), list):
            raise ValueError("not a trusted root object")
    except ValueError as exc:
        r.fail(node.mark, f"{what}.trustedRoot {value!r} is not a trusted_root.json: {exc}")
        return None
    return found[1]


def _keyless(r: Reader, node: Node, what: str) -> KeylessAuthority | None:
    fields = r.mapping(
        node,
        what,
        allowed=(
            "issuer",
            "issuerRegExp",
            "subject",
            "subjectRegExp",
            "trustedRoot",
            "ctlog",
            "tlog",
        ),
    )
    if fields is None:
        return None
    issuer = _one_of(r, fields, node, what, "issuer", "issuerRegExp")
    subject = _one_of(r, fields, node, what, "subject", "subjectRegExp")
    ctlog = (
        r.choice(fields["ctlog"], f"{what}.ctlog", ("required", "optional"))
        if "ctlog" in fields
        else "required"
    )
    root = _trusted_root(r, fields, what)
    tlog = (
        r.choice(fields["tlog"], f"{what}.tlog", ("required", "optional"))
        if "tlog" in fields
        else "required"
    )
    if issuer is None or subject is None or ctlog is None or root is None or tlog is None:
        return None
    return KeylessAuthority(
        issuer=issuer[0],
        issuer_regexp=issuer[1],
        subject=subject[0],
        subject_regexp=subject[1],
        trusted_root=root,
        ctlog=ctlog,  # type: ignore[arg-type]
        tlog=tlog,  # type: ignore[arg-type]
    )


_RDN = re.compile(r"\s*([A-Za-z][A-Za-z0-9.]*)\s*=\s*([^,]+?)\s*(?:,|$)")


def _trusted_identity(r: Reader, value: str, node: Node, what: str) -> bool:
    prefix, sep, dn = value.partition(":")
    if not sep or prefix.strip() != "x509.subject" or not dn.strip():
        r.fail(node.mark, f"{what} {value!r} must be '*' or 'x509.subject: C=..., ST=..., O=...'")
        return False
    attrs = {m.group(1).upper() for m in _RDN.finditer(dn)}
    missing = [a for a in ("C", "ST", "O") if a not in attrs]
    if missing:
        r.fail(
            node.mark, f"{what} {value!r} lacks {', '.join(missing)}; Notation requires C, ST and O"
        )
        return False
    return True


def _notation(r: Reader, node: Node, what: str) -> NotationAuthority | None:
    fields = r.mapping(
        node,
        what,
        allowed=("trustStore", "trustedIdentities", "level"),
        required=("trustStore", "trustedIdentities"),
    )
    if fields is None:
        return None
    level = (
        r.choice(fields["level"], f"{what}.level", ("strict", "permissive", "audit", "skip"))
        if "level" in fields
        else "strict"
    )
    store_type, pem = None, None
    if "trustStore" in fields:
        store = fields["trustStore"]
        sf = r.mapping(
            store,
            f"{what}.trustStore",
            allowed=("type", "certificates", "path"),
            required=("type",),
        )
        if sf is not None:
            if "type" in sf:
                store_type = r.choice(
                    sf["type"], f"{what}.trustStore.type", ("ca", "signingAuthority")
                )
            source = r.pem(sf, store, f"{what}.trustStore", "certificates")
            if source is not None:
                try:
                    certs = x509.load_pem_x509_certificates(source[0])
                    pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)
                except ValueError:
                    r.fail(
                        source[1].mark,
                        f"{what}.trustStore: no PEM certificate could be read; paste the root "
                        "certificate(s) (-----BEGIN CERTIFICATE----- ...)",
                    )
    identities: list[str] = []
    if "trustedIdentities" in fields:
        entries = r.strings(
            fields["trustedIdentities"], f"{what}.trustedIdentities", non_empty=True
        )
        values = [v for v, _ in entries]
        if "*" in values and len(values) > 1:
            r.fail(
                fields["trustedIdentities"].mark,
                f"{what}.trustedIdentities: '*' must be the only entry",
            )
        for value, item in entries:
            if value == "*" or _trusted_identity(r, value, item, f"{what}.trustedIdentities entry"):
                identities.append(value)
    if store_type is None or pem is None or level is None or not identities:
        return None
    return NotationAuthority(
        trust_store_type=store_type,  # type: ignore[arg-type]
        certificates=pem,
        trusted_identities=tuple(identities),
        level=level,  # type: ignore[arg-type]
    )


_AUTHORITY_KINDS: dict[str, Callable[[Reader, Node, str], AuthoritySpec | None]] = {
    "key": _key,
    "keyless": _keyless,
    "notation": _notation,
}


def _authorities(r: Reader, node: Node) -> tuple[Authority, ...]:
    out: list[Authority] = []
    seen: dict[str, Mark] = {}
    for i, item in enumerate(r.items(node, "spec.authorities")):
        what = f"spec.authorities[{i}]"
        fields = r.mapping(item, what, allowed=("name", *_AUTHORITY_KINDS), required=("name",))
        if fields is None:
            continue
        name = r.name(fields["name"], f"{what}.name") if "name" in fields else None
        if name is not None:
            what = f"authority {name!r}"
            if name in seen:
                r.fail(
                    fields["name"].mark,
                    f"duplicate authority name {name!r} (first at line {seen[name].line})",
                )
                name = None
            else:
                seen[name] = fields["name"].mark
        kinds = [k for k in _AUTHORITY_KINDS if k in fields]
        if len(kinds) != 1:
            r.fail(
                item.mark,
                f"{what} needs exactly one of: {', '.join(_AUTHORITY_KINDS)} (got {len(kinds)})",
            )
            continue
        spec = _AUTHORITY_KINDS[kinds[0]](r, fields[kinds[0]], f"{what}.{kinds[0]}")
        if name is not None and spec is not None:
            out.append(Authority(name=name, spec=spec, mark=item.mark))
    return tuple(out)


def _rules(r: Reader, node: Node) -> tuple[Rule, ...]:
    out: list[Rule] = []
    seen: dict[str, Mark] = {}
    for i, item in enumerate(r.items(node, "spec.rules")):
        what = f"spec.rules[{i}]"
        fields = r.mapping(
            item, what, allowed=("name", "expr", "message"), required=("name", "expr")
        )
        if fields is None:
            continue
        name = r.name(fields["name"], f"{what}.name") if "name" in fields else None
        if name is not None and name in seen:
            r.fail(
                fields["name"].mark,
                f"duplicate rule name {name!r} (first at line {seen[name].line})",
            )
            name = None
        elif name is not None:
            seen[name] = fields["name"].mark
        label = f"rule {name!r}" if name else what
        expr = r.expr(fields["expr"], f"{label} expr") if "expr" in fields else None
        message = r.string(fields["message"], f"{what}.message") if "message" in fields else ""
        if expr is not None:  # kept even when other fields are bad: its CEL is still checked
            out.append(Rule(name=name or what, expr=expr, message=message or ""))
    return tuple(out)


def _image_policy(r: Reader, spec: Node, name: str | None, mark: Mark) -> ImagePolicy | None:
    allowed = ("mode", "images", "exclude", "namespaces", "digests", "when", "authorities", "rules")
    f = r.mapping(spec, "spec", allowed=allowed, required=("images",))
    if f is None:
        return None
    mode = r.choice(f["mode"], "spec.mode", ("enforce", "audit")) if "mode" in f else "enforce"
    images = r.globs(f["images"], "spec.images", "image", non_empty=True) if "images" in f else ()
    exclude = r.globs(f["exclude"], "spec.exclude", "image") if "exclude" in f else ()
    namespaces = (
        r.globs(f["namespaces"], "spec.namespaces", "namespace") if "namespaces" in f else ()
    )
    digests: set[str] = set()
    for value, item in r.strings(f["digests"], "spec.digests") if "digests" in f else ():
        try:
            digests.add(parse_digest(value))
        except InvalidReference as exc:
            r.fail(item.mark, f"spec.digests: {exc}")
    when = r.expr(f["when"], "spec.when") if "when" in f else None
    authorities = _authorities(r, f["authorities"]) if "authorities" in f else ()
    rules = _rules(r, f["rules"]) if "rules" in f else ()
    # With issues, this is a partial model: its expressions are still compiled so that one
    # run reports every problem (see PolicyLoadError.partial); it is never applied.
    return ImagePolicy(
        name=name or "(invalid name)",
        mark=mark,
        images=images,
        mode=mode or "enforce",  # type: ignore[arg-type]
        exclude=exclude,
        namespaces=namespaces,
        digests=frozenset(digests),
        when=when,
        authorities=authorities,
        rules=rules,
    )


# -- PolicyTest -----------------------------------------------------------------------------


def _timestamp(r: Reader, node: Node, what: str) -> datetime | None:
    text = r.string(node, what)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        r.fail(
            node.mark,
            f"{what} {text!r} must be an RFC 3339 time with a zone, e.g. 2026-01-31T00:00:00Z",
        )
        return None
    return value


_SIGNATURE_KEYS = (
    "subject",
    "issuer",
    "san",
    "extensions",
    "keyId",
    "signedAt",
    "tlog",
    "annotations",
)


def _signature(r: Reader, node: Node, what: str) -> Signature | None:
    f = r.mapping(node, what, allowed=_SIGNATURE_KEYS)
    if f is None:
        return None
    before = len(r.issues)
    values: dict[str, Any] = {}
    for key in ("subject", "issuer", "keyId"):
        if key in f:
            values[key] = r.string(f[key], f"{what}.{key}", allow_empty=True)
    san = tuple(v for v, _ in r.strings(f["san"], f"{what}.san")) if "san" in f else ()
    extensions = r.string_map(f["extensions"], f"{what}.extensions") if "extensions" in f else {}
    annotations = (
        r.string_map(f["annotations"], f"{what}.annotations") if "annotations" in f else {}
    )
    signed_at = _timestamp(r, f["signedAt"], f"{what}.signedAt") if "signedAt" in f else None
    tlog = r.boolean(f["tlog"], f"{what}.tlog") if "tlog" in f else False
    if len(r.issues) > before:
        return None
    return Signature(
        kind="",  # the authority's kind, filled in when the case runs
        subject=values.get("subject") or "",
        issuer=values.get("issuer") or "",
        san=san,
        extensions=MappingProxyType(extensions),
        key_id=values.get("keyId") or "",
        signed_at=signed_at,
        tlog=bool(tlog),
        annotations=MappingProxyType(annotations),
    )


def _evidence(r: Reader, node: Node, what: str) -> Evidence | None:
    f = r.mapping(node, what, allowed=("verified", "error", "signatures"), required=("verified",))
    if f is None or "verified" not in f:
        return None
    verified = r.boolean(f["verified"], f"{what}.verified")
    error = r.string(f["error"], f"{what}.error") if "error" in f else None
    signatures = [
        _signature(r, item, f"{what}.signatures[{i}]")
        for i, item in enumerate(
            r.items(f["signatures"], f"{what}.signatures") if "signatures" in f else ()
        )
    ]
    if verified is None or None in signatures:
        return None
    if verified:
        if error:
            r.fail(
                f["error"].mark,
                f"{what}: a verified authority has no error; drop 'error' or set verified: false",
            )
            return None
        return Evidence(signatures=tuple(s for s in signatures if s) or (Signature(kind=""),))
    if signatures:
        r.fail(
            f["signatures"].mark,
            f"{what}: signatures are listed but verified is false; set verified: true",
        )
        return None
    return Evidence.unverified(error or "assumed unverified by the test case")


def _request(r: Reader, f: dict[str, Node], what: str, image: str, digest: str) -> Request | None:
    req = (
        r.mapping(
            f["request"],
            f"{what}.request",
            allowed=("operation", "namespace", "labels", "annotations", "podName", "podUid"),
        )
        if "request" in f
        else {}
    )
    desc = (
        r.mapping(
            f["descriptor"], f"{what}.descriptor", allowed=("mediaType", "size", "annotations")
        )
        if "descriptor" in f
        else {}
    )
    if req is None or desc is None:
        return None
    before = len(r.issues)
    operation = (
        r.choice(req["operation"], f"{what}.request.operation", OPERATIONS)
        if "operation" in req
        else "pull"
    )
    strings = {
        k: r.string(req[k], f"{what}.request.{k}", allow_empty=True)
        for k in ("namespace", "podName", "podUid")
        if k in req
    }
    size = r.integer(desc["size"], f"{what}.descriptor.size") if "size" in desc else 0
    media_type = (
        r.string(desc["mediaType"], f"{what}.descriptor.mediaType") if "mediaType" in desc else ""
    )
    if len(r.issues) > before:
        return None
    return Request(
        image_name=image,
        descriptor=Descriptor(
            media_type=media_type or "",
            digest=digest,
            size=size or 0,
            annotations=MappingProxyType(
                r.string_map(desc["annotations"], f"{what}.descriptor.annotations")
                if "annotations" in desc
                else {}
            ),
        ),
        operation=operation or "pull",
        namespace=strings.get("namespace") or "",
        labels=MappingProxyType(
            r.string_map(req["labels"], f"{what}.request.labels") if "labels" in req else {}
        ),
        annotations=MappingProxyType(
            r.string_map(req["annotations"], f"{what}.request.annotations")
            if "annotations" in req
            else {}
        ),
        pod_name=strings.get("podName") or "",
        pod_uid=strings.get("podUid") or "",
    )


def _case(r: Reader, node: Node, what: str) -> TestCase | None:
    allowed = ("name", "image", "digest", "request", "descriptor", "evidence", "now", "expect")
    f = r.mapping(node, what, allowed=allowed, required=("name", "image", "expect"))
    if f is None:
        return None
    before = len(r.issues)
    name = r.string(f["name"], f"{what}.name") if "name" in f else None
    what = f"test case {name!r}" if name else what
    image = r.string(f["image"], f"{what}.image") if "image" in f else None
    if image is not None:
        try:
            ref = parse_reference(image)
        except InvalidReference as exc:
            r.fail(f["image"].mark, f"{what}.image: {exc}")
            ref = None
    digest = ""
    if "digest" in f:
        value = r.string(f["digest"], f"{what}.digest")
        try:
            digest = parse_digest(value) if value is not None else ""
        except InvalidReference as exc:
            r.fail(f["digest"].mark, f"{what}.digest: {exc}")
    elif image is not None and ref is not None and ref.digest:
        digest = ref.digest
    evidence: dict[str, Evidence] = {}
    if "evidence" in f:
        ev = f["evidence"]
        if not isinstance(ev.value, dict):
            r.fail(
                ev.mark,
                f"{what}.evidence must map authority names (or policy/authority) to evidence",
            )
        else:
            for key, item in ev.value.items():
                parts = key.split("/")
                if len(parts) > 2 or not all(DNS_LABEL.fullmatch(p) for p in parts):
                    r.fail(
                        ev.key_marks[key],
                        f"{what}.evidence key {key!r} must be 'authority' or 'policy/authority'",
                    )
                    continue
                e = _evidence(r, item, f"{what}.evidence.{key}")
                if e is not None:
                    evidence[key] = e
    now = _timestamp(r, f["now"], f"{what}.now") if "now" in f else None
    expect = None
    if "expect" in f:
        ef = r.mapping(
            f["expect"],
            f"{what}.expect",
            allowed=("ok", "policy", "rule", "reason"),
            required=("ok",),
        )
        if ef is not None and "ok" in ef:
            ok = r.boolean(ef["ok"], f"{what}.expect.ok")
            extra = {
                k: r.string(ef[k], f"{what}.expect.{k}")
                for k in ("policy", "rule", "reason")
                if k in ef
            }
            if "rule" in extra and "policy" not in extra:
                r.fail(
                    ef["rule"].mark,
                    f"{what}.expect.rule needs expect.policy: rule names are per policy",
                )
            if ok is not None and None not in extra.values():
                expect = Expect(ok=ok, **{k: v or "" for k, v in extra.items()})
    request = _request(r, f, what, image or "", digest) if image is not None else None
    if name is None or expect is None or request is None or len(r.issues) > before:
        return None
    return TestCase(
        name=name,
        mark=node.mark,
        request=request,
        expect=expect,
        evidence=MappingProxyType(evidence),
        now=now,
    )


def _policy_test(r: Reader, spec: Node, name: str | None, mark: Mark) -> PolicyTest | None:
    f = r.mapping(spec, "spec", allowed=("policies", "cases"), required=("cases",))
    if f is None:
        return None
    before = len(r.issues)
    policies = r.string(f["policies"], "spec.policies") if "policies" in f else ""
    cases: list[TestCase] = []
    seen: set[str] = set()
    for i, item in enumerate(
        r.items(f["cases"], "spec.cases", non_empty=True) if "cases" in f else ()
    ):
        case = _case(r, item, f"spec.cases[{i}]")
        if case is not None:
            if case.name in seen:
                r.fail(item.mark, f"duplicate test case name {case.name!r}")
            seen.add(case.name)
            cases.append(case)
    if name is None or policies is None or len(r.issues) > before:
        return None
    return PolicyTest(name=name, mark=mark, cases=tuple(cases), policies=policies)


# -- documents ------------------------------------------------------------------------------


def read_document(doc: Node, read_file: FileReader) -> tuple[Document | None, list[Issue]]:
    """Validate one YAML document.

    Returns the model and the issues found. With issues, an ``ImagePolicy`` may still come back
    as a partial model (for reporting only); anything else comes back as None.
    """
    r = Reader(read_file)
    top = r.mapping(
        doc,
        "the document",
        allowed=("apiVersion", "kind", "metadata", "spec"),
        required=("apiVersion", "kind", "metadata", "spec"),
    )
    if top is None:
        return None, r.issues
    if "apiVersion" in top:
        api = r.string(top["apiVersion"], "apiVersion")
        if api is not None and api != API_VERSION:
            r.fail(top["apiVersion"].mark, f"apiVersion must be {API_VERSION!r}, got {api!r}")
    kind = r.choice(top["kind"], "kind", KINDS) if "kind" in top else None
    name = None
    if "metadata" in top:
        meta = r.mapping(
            top["metadata"],
            "metadata",
            allowed=("name", "labels", "annotations"),
            required=("name",),
        )
        if meta is not None:
            name = r.name(meta["name"], "metadata.name") if "name" in meta else None
            for key in ("labels", "annotations"):
                if key in meta:
                    r.string_map(meta[key], f"metadata.{key}")
    if kind is None or "spec" not in top:
        return None, r.issues
    build = _image_policy if kind == "ImagePolicy" else _policy_test
    model = build(r, top["spec"], name, doc.mark)
    if r.issues and not isinstance(model, ImagePolicy):
        model = None
    return model, r.issues
