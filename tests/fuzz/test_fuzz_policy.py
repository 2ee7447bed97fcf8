"""Policy YAML and CEL: a directory either loads and compiles or raises PolicyLoadError with
FILE:LINE:COL issues, never anything else; and a set that loads never allows an unsigned
image unless a rule or an audit-only selection says so.

Documents are generated as structure (the ImagePolicy schema, with wrong types, unknown keys
and CEL from a small grammar), dumped as YAML, then broken at the character level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import KEY_A, KEY_B, verifiers
from pullgate.decide import Decider
from pullgate.policy import PolicyLoadError
from pullgate.request import Descriptor, Request
from pullgate.rules import CompiledPolicySet, load_policies

from .conftest import FUZZ, scaled
from .strategies import mutated, mutated_json

pytestmark = pytest.mark.slow  # 10,000 examples a target: more than 10 s


D = "sha256:" + "d" * 64
SHOWN = "policies"
ERROR_AND_INT = (
    b"apiVersion: pullgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: p0}\n"
    b"spec:\n  images: ['**']\n  rules:\n"
    b"  - {name: r0, expr: 'signatures.exists(s, true) == [] && 1'}\n"
)
IMAGES = [
    "ghcr.io/acme/app:v1",
    "docker.io/library/nginx:1.25",
    "registry.k8s.io/pause:3.9",
    "127.0.0.1:9/team/app",
    "ghcr.io/acme/payments/api@" + D,
]

# -- CEL --------------------------------------------------------------------------------------

CEL_ATOMS = [
    "true",
    "false",
    "1",
    "0",
    "-1",
    "1.5",
    "1u",
    '"x"',
    "'debug'",
    'b"x"',
    "null",
    "[]",
    "{}",
    '["a", "b"]',
    '{"a": 1}',
    "image.tag",
    "image.registry",
    "image.repository",
    "image.name",
    "image.digest",
    "image.size",
    'image.annotations["a"]',
    "request.namespace",
    "request.operation",
    "request.pod.name",
    'request.pod.labels["team"]',
    "signatures",
    "size(signatures)",
    'authorities["release"].verified',
    'authorities["release"].count',
    'authorities["nope"].verified',
    "authorities",
    "now",
    "policy.name",
    "policy.revision",
    'timestamp("2027-01-31T00:00:00Z")',
    'duration("1h")',
    'timestamp("not a time")',
    "unknown_name",
    "image.nope",
    "request.pod.labels",
    "dyn(1)",
    "has(image.tag)",
    "image.tag.lowerAscii()",
    "9223372036854775807",
    "18446744073709551615u",
    '"\\u00e9"',
]
CEL_BINARY = ["==", "!=", "<", "<=", ">", ">=", "&&", "||", "+", "-", "*", "/", "%", "in"]
CEL_MACROS = [
    "signatures.exists(s, {})",
    "signatures.all(s, {})",
    "signatures.exists_one(s, {})",
    "signatures.map(s, {})",
    "signatures.filter(s, {})",
    "[1, 2].all(x, {})",
]
CEL_METHODS = [
    '{}.startsWith("a")',
    '{}.endsWith("b")',
    '{}.contains("c")',
    '{}.matches("^a+$")',
    '{}.matches("(")',
    '{}.glob("ghcr.io/**")',
    "size({})",
    "string({})",
    "int({})",
    "{}.getFullYear()",
    "!{}",
    "-{}",
    "({})",
]


@st.composite
def cel_text(draw: st.DrawFn) -> str:
    """A few atoms joined by operators, wrapped in methods and macros (cheaper to draw than
    a recursive strategy, and as varied for the checker)."""
    text = draw(st.sampled_from(CEL_ATOMS))
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.integers(0, 2))
        if how == 0:
            op, atom = draw(st.sampled_from(CEL_BINARY)), draw(st.sampled_from(CEL_ATOMS))
            text = f"{text} {op} {atom}"
        elif how == 1:
            text = draw(st.sampled_from(CEL_MACROS + CEL_METHODS)).format(text)
        else:
            other = draw(st.sampled_from(CEL_ATOMS))
            text = f"{text} ? {other} : {text}"
    return text


cel_exprs = st.one_of(
    cel_text(),
    mutated(cel_text(), max_edits=2),
    st.builds(lambda n: "(" * n + "true" + ")" * n, st.integers(50, 3000)),
    st.builds(lambda n: "!" * n + "true", st.integers(50, 3000)),
    st.builds(lambda n: " && ".join(["true"] * n), st.integers(50, 1500)),
    st.builds(lambda n: '"' + "a" * n + '" == image.tag', st.integers(100, 9000)),
    st.builds(lambda n: "[" * n + "]" * n + " == []", st.integers(50, 2000)),
)

# -- documents --------------------------------------------------------------------------------

WEIRD: list[Any] = [None, True, False, 0, -1, 10**30, 1.5, float("inf"), "", "x", [], {}, ["a"]]
WEIRD += [{"a": "b"}, [[[]]], {"": None}, "\u0000", "ghcr.io/**", "- x"]
weird = st.sampled_from(WEIRD)
GLOBS = ["**", "ghcr.io/acme/**", "ghcr.io/acme/*", "docker.io/library/nginx", "127.0.0.1:9/**"]
GLOBS += ["registry.k8s.io/pause", "nginx", "ghcr.io/**/app", "**/x", "ghcr.io/a**", "*", ""]
GLOBS += ["GHCR.io/x", "ghcr.io/acme/[a-z]", "ghcr.io/" + "*" * 200, "x" * 5000]
globs = st.sampled_from(GLOBS) | mutated(st.sampled_from(GLOBS[:5]), max_edits=2)
names = st.sampled_from(["release", "ci", "p", "a-b", "Bad Name", "", "x" * 300, "é", "release"])
BAD_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
AUTHORITY_SPECS: list[Any] = [
    {"key": {"publicKey": KEY_A}},
    {"key": {"publicKey": KEY_B, "tlog": "required"}},
    {"key": {"publicKey": KEY_A, "tlog": "maybe"}},
    {"key": {"publicKey": BAD_PEM}},
    {"key": {"publicKey": "x"}},
    {"key": {"path": "../../../etc/passwd"}},
    {"key": {"path": "/dev/zero"}},
    {"key": {}},
    {"keyless": {"issuer": "https://token.actions.githubusercontent.com", "subject": "me"}},
    {"keyless": {"issuer": "https://x", "subjectRegExp": "^https://github\\.com/.+$"}},
    {"keyless": {"issuer": "https://x", "subjectRegExp": "unanchored"}},
    {"keyless": {"issuer": "https://x", "subjectRegExp": "^(a$"}},
    {"keyless": {"issuer": "https://x", "subjectRegExp": "^" + "(a*)*" * 50 + "$"}},
    {"keyless": {}},
    {"notation": {}},
    {"notation": {"trustedIdentities": ["*"]}},
    {"key": {"publicKey": KEY_A}, "keyless": {"subject": "x"}},
    {},
]
authority = st.one_of(
    st.builds(lambda n, spec: {"name": n, **spec}, names, st.sampled_from(AUTHORITY_SPECS)),
    weird,
)
rule = st.one_of(
    st.builds(lambda n, e: {"name": n, "expr": e, "message": "m"}, names, cel_exprs),
    st.builds(lambda n, e: {"name": n, "expr": e}, weird, weird),
)
MODES = st.sampled_from(["enforce", "audit", "Enforce", ""]) | weird


# Valid parts, so that a good share of the generated sets load and get judged.
OK_GLOBS = ["**", "ghcr.io/acme/**", "ghcr.io/acme/*", "docker.io/library/nginx", "127.0.0.1:9/**"]
OK_GLOBS += ["registry.k8s.io/pause", "ghcr.io/**/app", "ghcr.io/acme/payments/**"]
OK_AUTHORITIES = AUTHORITY_SPECS[:2] + AUTHORITY_SPECS[8:10]
OK_RULES = ['authorities["a0"].verified', "size(signatures) > 0", 'request.namespace == "team-a"']
OK_RULES += ['image.tag.startsWith("v")', "true", "false", "signatures.exists(s, s.tlog)"]
OK_RULES += ['authorities["a0"].verified || image.registry == "ghcr.io"', "now > timestamp(0)"]
OK_WHEN = ['image.tag != "latest"', 'request.namespace.startsWith("dev-")', "true", "false"]


@st.composite
def image_policy(
    draw: st.DrawFn, index: int = 0, *, valid: bool = False, require_signature: bool = False
) -> dict[str, Any]:
    """One ImagePolicy. ``valid``: built from parts that load (CEL may still fail its
    checks); otherwise any part may be wrong. ``require_signature``: the shape "images need a
    signature" (enforce, authorities, no rules)."""
    pick = st.sampled_from
    spec: dict[str, Any] = {
        "images": draw(st.lists(pick(OK_GLOBS) if valid else globs, min_size=1, max_size=3))
    }
    if require_signature or draw(st.booleans()):
        count = draw(st.integers(1, 3))
        spec["authorities"] = [
            {"name": f"a{i}", **draw(pick(OK_AUTHORITIES))} if valid else draw(authority)
            for i in range(count)
        ]
        if not valid and draw(st.integers(0, 4)) == 0:
            spec["authorities"] = draw(weird)
    if draw(st.integers(0, 2)) == 0:
        spec["exclude"] = draw(st.lists(pick(OK_GLOBS) if valid else globs, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        spec["namespaces"] = draw(
            st.lists(pick(["team-a", "dev-*"] if valid else ["team-a", "BAD", "*"]), max_size=2)
        )
    if draw(st.integers(0, 3)) == 0:
        spec["digests"] = draw(st.lists(pick([D] if valid else [D, "sha256:abc", "x"]), max_size=2))
    if draw(st.integers(0, 2)) == 0:
        spec["when"] = draw(pick(OK_WHEN) if valid else cel_exprs | weird)
    if not require_signature:
        if draw(st.booleans()):
            if valid:
                exprs = draw(st.lists(pick(OK_RULES) | cel_text(), min_size=1, max_size=3))
                spec["rules"] = [{"name": f"r{i}", "expr": e} for i, e in enumerate(exprs)]
            else:
                spec["rules"] = draw(st.lists(rule, max_size=3) | weird)
        if draw(st.integers(0, 3)) == 0:
            spec["mode"] = draw(pick(["enforce", "audit"]) if valid else MODES)
        if not valid and draw(st.integers(0, 5)) == 0:
            spec[draw(pick(["image", "Images", "", "rule"]))] = draw(weird)
    document: dict[str, Any] = {
        "apiVersion": "pullgate.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": f"p{index}" if valid else draw(names)},
        "spec": spec,
    }
    if not valid and draw(st.integers(0, 5)) == 0:
        document[draw(pick(["apiVersion", "kind", "metadata", "spec"]))] = draw(weird)
    return document


def _dump(documents: list[dict[str, Any]], flow: bool) -> str:
    options: dict[str, Any] = {
        "default_flow_style": flow,
        "allow_unicode": True,
        "sort_keys": False,
    }
    try:  # libyaml's emitter is the fast one; it refuses lone surrogates, Python's writes them
        return yaml.dump_all(
            documents, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), **options
        )
    except UnicodeEncodeError:
        return yaml.dump_all(documents, Dumper=yaml.SafeDumper, **options)


def _policy_test_seed() -> dict[str, Any]:
    """The shipped samples' PolicyTest, cut to a few cases (images, digests, evidence, now)."""
    path = Path(__file__).parents[2] / "samples/policies/tests/samples-test.yaml"
    seed: dict[str, Any] = yaml.safe_load(path.read_text())
    seed["spec"]["cases"] = seed["spec"]["cases"][:4]
    return seed


POLICY_TEST = _policy_test_seed()


@st.composite
def policy_files(draw: st.DrawFn) -> bytes:
    """Half the files are built to load, a quarter have wrong fields, a quarter wrong text."""
    how = draw(st.integers(0, 3))
    valid = how <= 1
    documents = [draw(image_policy(i, valid=valid)) for i in range(draw(st.integers(1, 3)))]
    if not valid and draw(st.booleans()):
        documents.append(draw(mutated_json(POLICY_TEST, max_edits=3)))
    text = _dump(documents, draw(st.booleans()))
    if how == 3:
        text = draw(mutated(st.just(text), max_edits=3))
    return text.encode("utf-8", "surrogatepass")


RAW_YAML = [
    "a: &a [*a]\n",
    "a: " + "[" * 600 + "]" * 600 + "\n",
    "a: " + "{a: " * 600 + "1" + "}" * 600 + "\n",
    "metadata: {name: " + "9" * 5000 + "}\n",
    "x: !!python/object/apply:os.system [echo]\n",
    "x: 2024-01-01\n",
    "<<: {a: 1}\n",
    "? [a]\n: b\n",
    "\t- x\n",
    "%YAML 1.1\n%TAG ! tag:evil:\n---\n!x y\n",
    "\ufeffapiVersion: x\n",
]

# A billion laughs: 9**10 nodes by aliases; refused at 200,000 (about a second of work).
LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)
)
raw_files = st.sampled_from(RAW_YAML).map(str.encode) | st.binary(max_size=100)


def _check_load(root: Path, data: bytes) -> CompiledPolicySet | None:
    (root / "p.yaml").write_bytes(data)
    try:
        return load_policies(str(root), display=SHOWN)
    except PolicyLoadError as exc:
        text = data.decode("utf-8", "replace")  # YAML breaks lines at CR, NEL, LS and PS too
        lines = sum(text.count(c) for c in "\n\r\x85\u2028\u2029") + 2
        assert exc.issues
        for issue in exc.issues:
            assert issue.mark.file in (SHOWN, f"{SHOWN}/p.yaml"), issue
            assert 1 <= issue.mark.line <= lines, issue
            assert issue.mark.column >= 1, issue
            assert issue.message and "\n" not in issue.message, issue
            assert "Traceback" not in issue.message
        return None


def _never_allows_unsigned(compiled: CompiledPolicySet) -> None:
    """No evidence at all: an allow needs a policy whose rules said so, a policy without
    authorities, or only audit policies applying."""
    by_name = {p.name: p for p in compiled.policies}
    decider = Decider(verifiers(), log=None)
    for image in IMAGES:
        for namespace in ("", "team-a"):
            j = decider.decide(compiled, Request(image, Descriptor(digest=D), namespace=namespace))
            for result in j.policies:
                assert not any(a.verified for a in result.authorities), j
            if not j.ok:
                continue
            assert j.policies, f"allowed with no policy applying: {j.reason}"
            enforced = [r for r in j.policies if r.mode == "enforce"]
            for result in enforced:
                policy = by_name[result.name].policy
                assert policy.rules or not policy.authorities, (
                    f"{result.name} has authorities and no rules, none verified, and passed: "
                    f"{j.reason}"
                )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory; every example overwrites its only file."""
    path = tmp_path_factory.mktemp("fuzz") / SHOWN
    path.mkdir()
    return path


@FUZZ
@given(data=st.one_of(policy_files(), raw_files))
@example(data=b"a: &a [*a]\n")
@example(data=b"\rapiVersion: null\nk")  # CR breaks lines for YAML
@example(data=b"a: b\nc: \x00")  # a NUL: reported at 2:4, on one line
@example(data=("a: " + "[" * 600 + "]" * 600).encode())
@example(data=("metadata: {name: " + "9" * 5000 + "}\n").encode())
@example(data=LAUGHS.encode())
@example(data=b"---\n" * 5000)
@example(data=ERROR_AND_INT)  # found in CI: cel-python's message for it crashed
def test_policies_load_or_raise_the_typed_error(root: Path, data: bytes) -> None:
    compiled = _check_load(root, data)
    if compiled is not None:
        _never_allows_unsigned(compiled)


@scaled(0.3, minimum=300)
@given(
    documents=st.integers(1, 3).flatmap(
        lambda n: st.tuples(
            *(image_policy(i, valid=True, require_signature=True) for i in range(n))
        ).map(list)
    ),
    flow=st.booleans(),
)
@example(
    documents=[
        {
            "apiVersion": "pullgate.dev/v1alpha1",
            "kind": "ImagePolicy",
            "metadata": {"name": "require-signed"},
            "spec": {
                "images": ["**"],
                "authorities": [{"name": "release", "key": {"publicKey": KEY_A}}],
            },
        }
    ],
    flow=False,
)
def test_require_signature_sets_never_allow_unsigned(
    root: Path, documents: list[dict[str, Any]], flow: bool
) -> None:
    compiled = _check_load(root, _dump(documents, flow).encode("utf-8", "surrogatepass"))
    if compiled is None:
        return
    decider = Decider(verifiers(), log=None)
    for image in IMAGES:
        j = decider.decide(compiled, Request(image, Descriptor(digest=D)))
        assert not j.ok, j.reason
        assert j.reason.startswith("denied"), j.reason
