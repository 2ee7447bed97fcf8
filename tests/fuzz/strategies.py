"""Generated structure for the fuzz targets: valid shapes first, then mutated.

Random text alone almost never gets past the first check of a parser; these build inputs the
way real ones look (references, descriptors, policies, JSON) and then break them a little.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# -- text mutations ---------------------------------------------------------------------------

ODD_CHARS = ["\x00", "\t", "\n", "\r", " ", "\u00e9", "\u200b", "\ud800", "\udcff", "\U0001f600"]
ODD_CHARS += ["\\", '"', "'", "{", "}", "[", "]", "@", ":", "/", "//", "..", "-", "_", "__", "*"]
ODD_CHARS += ["!!python/object:os.system", "&a", "*a", "<<", "%", "#", "|", ">", "${", "\ufeff"]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], *, max_edits: int = 3) -> str:
    """``base`` with up to ``max_edits`` character-level edits (insert, delete, replace,
    duplicate, case flip, truncate)."""
    text = draw(base)
    for _ in range(draw(st.integers(0, max_edits))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup", "case", "cut"]))
        piece = draw(st.sampled_from(ODD_CHARS) | st.text(max_size=3))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)) :]
        elif op == "replace":
            text = text[:pos] + piece + text[pos + 1 :]
        elif op == "dup":
            text = text[:pos] + text[pos : pos + 8] * draw(st.integers(2, 40)) + text[pos:]
        elif op == "case":
            text = text[:pos] + text[pos : pos + 4].swapcase() + text[pos + 4 :]
        else:
            text = text[:pos]
    return text


# -- image references -------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
HEX = "0123456789abcdef"
_WORDS = ["a", "acme", "app", "nginx", "x1", "0", "library", "team", "b2c", "k8s", "z"]
_word = st.sampled_from(_WORDS) | st.text(_ALNUM, min_size=1, max_size=6)
path_component = st.builds(
    lambda a, sep, b: a + sep + b if sep is not None else a,
    _word,
    st.sampled_from([None, None, ".", "_", "__", "-", "---"]),
    _word,
)
domain = st.builds(
    lambda parts, upper: (".".join(parts)).upper() if upper else ".".join(parts),
    st.lists(
        st.sampled_from(["example", "com", "io", "ghcr", "my-reg", "10", "0", "x"]) | _word,
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
registry = st.one_of(
    st.sampled_from(
        [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "ghcr.io",
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "[fe80::1]",
            "Quay.IO",
            "gcr.io",
        ]
    ),
    st.builds(lambda d, p: d + p, domain, st.sampled_from(["", ":5000", ":1", ":99999", ":"])),
)
tag = st.text(_ALNUM + "ABCXYZ_.-", min_size=1, max_size=20) | st.sampled_from(
    ["latest", "v1.2.3", "x" * 128, "x" * 129, "-bad", ".bad", ""]
)
digest = st.one_of(
    st.builds(lambda h: "sha256:" + h, st.text(HEX, min_size=64, max_size=64)),
    st.builds(lambda h: "sha512:" + h, st.text(HEX, min_size=128, max_size=128)),
    st.builds(
        lambda a, h: f"{a}:{h}",
        st.sampled_from(["sha256", "SHA256", "sha384", "md5", "sha256+b64", "", "sha-256"]),
        st.text(HEX + "ABCDEFxyz", max_size=130),
    ),
)


@st.composite
def reference_text(draw: st.DrawFn) -> str:
    """A reference assembled from its grammar: [registry/]path[:tag][@digest]."""
    parts = draw(st.lists(path_component, min_size=1, max_size=4))
    text = "/".join(parts)
    if draw(st.booleans()):
        text = draw(registry) + "/" + text
    if draw(st.booleans()):
        text += ":" + draw(tag)
    if draw(st.booleans()):
        text += "@" + draw(digest)
    return text


REAL_REFERENCES = [
    "nginx",
    "nginx:1.25",
    "library/nginx:latest",
    "docker.io/library/nginx@sha256:" + "a" * 64,
    "ghcr.io/acme/app:v1.2.3@sha256:" + "0123456789abcdef" * 4,
    "registry.k8s.io/pause:3.9",
    "quay.io/cilium/cilium:v1.15.0",
    "localhost:5000/team/app",
    "[::1]:5000/app:tag",
    "127.0.0.1:5000/a/b/c/d:e",
    "my-registry.example.com:443/a__b/c---d/e.f:TAG_1",
    "gcr.io/distroless/static@sha512:" + "f" * 128,
]

references = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="ascii"), max_size=300),
    reference_text(),
    mutated(reference_text()),
    mutated(st.sampled_from(REAL_REFERENCES), max_edits=4),
    st.builds(
        lambda s, n: s * n,
        st.sampled_from(["a/", "a", "A", "-", ":", "@", "x."]),
        st.integers(1, 5000),
    ),
)


# -- JSON -------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def deep(depth: int, kind: str = "[") -> bytes:
    """``depth`` nested arrays or objects: what recursive parsers choke on."""
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@st.composite
def json_bytes(draw: st.DrawFn, shaped: st.SearchStrategy[Any]) -> bytes:
    """JSON from ``shaped`` values, then broken: truncated, invalid UTF-8, NaN, deep, huge."""
    value = draw(shaped)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", "surrogatepass")
    choice = draw(st.integers(0, 9))
    if choice == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif choice == 1:
        pos = draw(st.integers(0, len(data)))
        data = (
            data[:pos]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            + data[pos:]
        )
    elif choice == 2:
        data = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0"]))
    elif choice == 3:
        data = deep(draw(st.integers(900, 3000)), draw(st.sampled_from(["[", "{"])))
    elif choice == 4:
        data = draw(st.binary(max_size=64))
    return data


# -- structured JSON mutation -----------------------------------------------------------------

WEIRD_JSON: list[Any] = [None, True, 0, -1, 2**64, 1.5, 1e308, "", "x", "\u0000", [], {}]
WEIRD_JSON += [[None], {"": None}, "sha256:" + "0" * 64, "-" * 300, 10**40, -(10**40)]


def _paths(value: Any, prefix: tuple[Any, ...] = (), limit: int = 200) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    stack = [(prefix, value)]
    while stack and len(out) < limit:
        path, node = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any, *, max_edits: int = 3) -> Any:
    """``seed`` (a parsed JSON document) with a few values replaced, removed or added."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, max_edits))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        new = json.loads(json.dumps(draw(st.sampled_from(WEIRD_JSON) | json_values)))  # a copy
        if not path:
            doc = new
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.integers(0, 2))
        if op == 0:
            parent[path[-1]] = new
        elif op == 1:
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "mediaType", "digest", "critical", "payload"]))] = new
        else:
            parent.append(new)
    return doc


def dumped(value: Any) -> bytes:
    return json.dumps(value).encode()
