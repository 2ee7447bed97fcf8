"""Loading a policy directory: the ConfigMap volume layout, revisions, all-or-nothing rejection,
every error at its exact FILE:LINE:COL with a hint on how to fix it, CEL checked at load, and
the models valid documents become.

Every load here uses ``display="policies"``, so positions read ``policies/p.yaml:7:3``.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from conftest import KEY_A, KEY_B, indent_pem
from pullgate.globs import Glob
from pullgate.policy import (
    Issue,
    KeyAuthority,
    KeylessAuthority,
    NotationAuthority,
    ParseCache,
    PolicyLoadError,
    PolicySet,
    load_policy_dir,
)
from pullgate.policy.loader import MAX_FILE_BYTES
from pullgate.rules import load_policies

SHOWN = "policies"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
IMAGES = 'images: ["x.io/a"]'


# -- helpers ----------------------------------------------------------------------------------


def policy(spec: str = IMAGES, name: str = "p") -> str:
    """One ImagePolicy document. ``spec`` is dedented and placed under ``spec:``, so its first
    line is line 6 of the document and its keys start at column 3."""
    body = textwrap.indent(textwrap.dedent(spec).lstrip("\n"), "  ")
    if body and not body.endswith("\n"):
        body += "\n"
    return (
        "apiVersion: pullgate.dev/v1alpha1\n"
        "kind: ImagePolicy\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"{body}"
    )


POLICY_TEST = """\
apiVersion: pullgate.dev/v1alpha1
kind: PolicyTest
metadata:
  name: t
spec:
  cases:
    - name: c
      image: x.io/a
      expect: {ok: true}
"""


def put(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write files byte for byte (no dedent), so positions in them are exact."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def load(root: Path) -> PolicySet:
    return load_policy_dir(root, display=SHOWN)


def issues_of(root: Path, *, compile_cel: bool = False) -> tuple[Issue, ...]:
    """Every issue of a revision that must not load."""
    with pytest.raises(PolicyLoadError) as info:
        if compile_cel:
            load_policies(str(root), display=SHOWN)
        else:
            load(root)
    return info.value.issues


def marks(issues: tuple[Issue, ...]) -> list[str]:
    return [str(i.mark) for i in issues]


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@cache
def rsa_1024_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@cache
def ca_pem() -> str:
    """A self-signed root for Notation trust stores."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Rockets"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def side_files() -> dict[str, str]:
    """Non-policy files every table case may refer to with ``path:``."""
    return {"key.pem": KEY_A, "rsa1024.pem": rsa_1024_pem(), "ca.pem": ca_pem()}


def configmap(root: Path, files: Mapping[str, str], stamp: str) -> None:
    """Publish ``files`` the way the kubelet updates a ConfigMap volume: a fresh ``..<stamp>``
    directory, a ``..data_tmp`` symlink renamed over ``..data`` in one step, a top-level
    symlink per key through ``..data``, then the previous directory removed."""
    root.mkdir(parents=True, exist_ok=True)
    stamped = root / f"..{stamp}"
    stamped.mkdir()
    for name, text in files.items():
        (stamped / name).write_text(text)
    data = root / "..data"
    previous = os.readlink(data) if data.is_symlink() else None
    os.symlink(stamped.name, root / "..data_tmp")
    os.replace(root / "..data_tmp", data)
    for name in files:
        if not (root / name).is_symlink():
            os.symlink(f"..data/{name}", root / name)
    for entry in root.iterdir():
        if entry.is_symlink() and not entry.name.startswith(".") and entry.name not in files:
            entry.unlink()
    if previous is not None:
        shutil.rmtree(root / previous)


# -- the parse cache: a reload parses only what changed ------------------------------------


def test_the_parse_cache_reuses_unchanged_files_and_reparses_changed_ones(tmp_path: Path) -> None:
    root = tmp_path / "cm"
    configmap(
        root,
        {"a.yaml": policy(name="a"), "b.yaml": policy(name="b")},
        "2026_11_27_00_00_00.000",
    )
    cache = ParseCache()
    first = load_policy_dir(root, display=SHOWN, cache=cache)
    edited = {"a.yaml": policy(name="a"), "b.yaml": policy(name="b2")}
    configmap(root, edited, "2026_11_27_00_05_00.000")
    second = load_policy_dir(root, display=SHOWN, cache=cache)
    assert [p.name for p in second.policies] == ["a", "b2"]
    assert second.policies[0] is first.policies[0]  # a.yaml: the same document, not reparsed
    assert second.revision == load(root).revision  # the cache never changes what loads
    # The same text under another name is parsed again: its marks name that file.
    (root / "c.yaml").write_text(policy(name="c"))
    third = load_policy_dir(root, display=SHOWN, cache=cache)
    assert [str(p.mark) for p in third.policies] == [
        "policies/a.yaml:1:1",
        "policies/b.yaml:1:1",
        "policies/c.yaml:1:1",
    ]


def test_the_parse_cache_never_hides_a_change_of_a_file_read_through_path(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "key.pem").write_text(KEY_A)
    (root / "p.yaml").write_text(authority(KEY_PATH))
    cache = ParseCache()
    before = load_policy_dir(root, display=SHOWN, cache=cache)
    (root / "key.pem").write_text(KEY_B)
    after = load_policy_dir(root, display=SHOWN, cache=cache)
    key_before = before.policies[0].authorities[0].spec
    key_after = after.policies[0].authorities[0].spec
    assert key_before != key_after
    assert after.revision != before.revision


def test_the_parse_cache_keeps_no_file_with_issues(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "p.yaml").write_text(policy('images: ["x.io/a"]\nmode: audti\n'))
    cache = ParseCache()
    for _ in range(2):  # reported again, not remembered as a clean file
        with pytest.raises(PolicyLoadError, match="did you mean 'audit'"):
            load_policy_dir(root, display=SHOWN, cache=cache)


# -- 1. the directory layout ------------------------------------------------------------------


def test_configmap_volume_loads_under_the_top_level_names(tmp_path: Path) -> None:
    root = tmp_path / "cm"
    configmap(
        root,
        {"policy.yaml": policy(name="prod"), "team.yml": policy(name="team")},
        "2026_11_27_00_00_00.000",
    )
    assert (root / "..data").is_symlink() and (root / "policy.yaml").is_symlink()

    loaded = load(root)
    assert loaded.files == ("policies/policy.yaml", "policies/team.yml")
    assert [(p.name, str(p.mark)) for p in loaded.policies] == [
        ("prod", "policies/policy.yaml:1:1"),
        ("team", "policies/team.yml:1:1"),
    ]
    # Without a display name the root path is shown, still never the ".." directories.
    plain = load_policy_dir(root)
    assert plain.files == (f"{root}/policy.yaml", f"{root}/team.yml")
    assert all(".." not in p.mark.file for p in plain.policies)


def test_configmap_data_swap_changes_content_and_revision(tmp_path: Path) -> None:
    root = tmp_path / "cm"
    first = {"policy.yaml": policy(name="v1"), "key.pem": KEY_A}
    configmap(root, first, "2026_11_27_00_00_00.000")
    before = load(root)
    assert [p.name for p in before.policies] == ["v1"]

    configmap(root, {"policy.yaml": policy(name="v2"), "key.pem": KEY_A}, "2026_11_27_00_05_00.000")
    after = load(root)
    assert [p.name for p in after.policies] == ["v2"]
    assert after.revision != before.revision
    assert not (root / "..2026_11_27_00_00_00.000").exists()

    # A bad update is reported under the name the author edited, not the ..data path.
    bad = policy('images: ["x.io/a"]\nmode: audti\n', name="v3")
    configmap(root, {"policy.yaml": bad, "key.pem": KEY_A}, "2026_11_27_00_10_00.000")
    (issue,) = issues_of(root)
    assert str(issue.mark) == "policies/policy.yaml:7:9"
    assert "did you mean 'audit'?" in issue.message

    # Same content again, in yet another timestamped directory: the first revision again.
    configmap(root, first, "2026_11_27_00_15_00.000")
    assert load(root).revision == before.revision


def test_dot_named_files_and_directories_are_skipped(tmp_path: Path) -> None:
    root = put(
        tmp_path / "p",
        {
            "p.yaml": policy(),
            ".hidden.yaml": "key: [unclosed\n",
            ".git/config.yaml": "not: [valid\n",
            "sub/.swap.yml": "\t\tbroken\n",
            "..2026_01_01/old.yaml": "kind: Nope\n",
        },
    )
    assert load(root).files == ("policies/p.yaml",)


def test_non_yaml_files_are_ignored(tmp_path: Path) -> None:
    root = put(
        tmp_path / "p",
        {
            "p.yaml": policy(),
            "README.md": "# policies\n",
            "policy.json": '{"kind": "ImagePolicy"}',
            "p.yaml.bak": "kind: [broken\n",
            "p.yaml~": "kind: [broken\n",
            "key.pem": KEY_A,
        },
    )
    assert load(root).files == ("policies/p.yaml",)


def test_yml_suffix_is_accepted(policy_dir: Callable[..., Path]) -> None:
    root = policy_dir({"only.yml": policy(name="short-suffix")})
    loaded = load(root)
    assert loaded.files == ("policies/only.yml",)
    assert [p.name for p in loaded.policies] == ["short-suffix"]


def test_nested_subdirectories_are_loaded(policy_dir: Callable[..., Path]) -> None:
    root = policy_dir(
        {
            "top.yaml": policy(name="top"),
            "teams/payments/prod.yaml": policy(name="payments"),
            "teams/web/deep/er/x.yml": policy(name="web"),
        },
    )
    loaded = load(root)
    assert loaded.files == (
        "policies/teams/payments/prod.yaml",
        "policies/teams/web/deep/er/x.yml",
        "policies/top.yaml",
    )
    assert {p.name: p.mark.file for p in loaded.policies} == {
        "payments": "policies/teams/payments/prod.yaml",
        "top": "policies/top.yaml",
        "web": "policies/teams/web/deep/er/x.yml",
    }


def test_a_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"store/real.yaml": policy(name="linked")})
    (root / "store").rename(root / ".store")  # hidden: reachable only through the link
    os.symlink(".store/real.yaml", root / "linked.yaml")
    loaded = load(root)
    assert loaded.files == ("policies/linked.yaml",)
    assert str(loaded.policies[0].mark) == "policies/linked.yaml:1:1"


@pytest.mark.parametrize("target", ["file", "directory"])
def test_a_symlink_resolving_outside_the_root_rejects_the_revision(
    tmp_path: Path, target: str
) -> None:
    outside = put(tmp_path / "elsewhere", {"x.yaml": policy(name="outsider")})
    root = put(tmp_path / "p", {"good.yaml": policy(name="good")})
    link = root / ("evil.yaml" if target == "file" else "evil")
    os.symlink(outside / "x.yaml" if target == "file" else outside, link)

    (issue,) = issues_of(root)
    assert str(issue.mark) == f"policies/{link.name}:1:1"
    assert "symlink resolves outside the policy directory" in issue.message
    assert "refused" in issue.message


def test_a_dangling_yaml_symlink_is_an_error(tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"good.yaml": policy()})
    os.symlink("gone.yaml", root / "broken.yaml")
    os.symlink("gone.txt", root / "notes.txt")  # not a policy file: ignored
    (issue,) = issues_of(root)
    assert str(issue.mark) == "policies/broken.yaml:1:1"
    assert "dangling symlink; fix or remove it" in issue.message


def test_multi_document_files_load_every_document(policy_dir: Callable[..., Path]) -> None:
    text = "---\n" + policy(name="one") + "---\n" + policy(name="two") + "...\n---\n"
    text += policy(name="three")
    root = policy_dir({"all.yaml": text})
    loaded = load(root)
    assert [(p.name, p.mark.line) for p in loaded.policies] == [
        ("one", 2),
        ("three", 17),
        ("two", 9),
    ]


@pytest.mark.parametrize(
    "text",
    [
        policy(name="one") + "---\n---\n" + policy(name="two"),
        policy(name="one") + "---\n# only a comment\n---\n" + policy(name="two"),
        "---\n---\n" + policy(name="one") + "---\n" + policy(name="two"),
        policy(name="one") + "---\n" + policy(name="two") + "---\n",
    ],
    ids=["empty-between", "comment-only", "empty-first", "trailing-separator"],
)
def test_empty_documents_are_skipped(tmp_path: Path, text: str) -> None:
    root = put(tmp_path / "p", {"all.yaml": text})
    assert [p.name for p in load(root).policies] == ["one", "two"]


def test_same_content_gives_the_same_revision(tmp_path: Path) -> None:
    files = {"a.yaml": policy(name="a"), "sub/b.yml": policy(name="b")}
    first = put(tmp_path / "one", files)
    second = put(tmp_path / "two", files)
    assert load(first).revision == load(first).revision
    assert load(first).revision == load(second).revision  # same display name, same content
    assert len(load(first).revision) == 16
    # however the directory is written: relative, with ./, with a slash, absolute
    spellings = {str(first), f"{first}/", os.path.relpath(first), f"./{os.path.relpath(first)}"}
    revisions = {load_policy_dir(spelled).revision for spelled in spellings}
    assert revisions == {load(first).revision}, spellings


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("a.yaml", policy(name="a") + "# a comment\n"),
        ("a.yaml", policy(name="a").replace('"x.io/a"', '"x.io/b"')),
        ("a.yaml", policy(name="a") + " "),
        ("sub/b.yml", policy(name="b") + "\n"),
        ("c.yaml", policy(name="c")),
    ],
    ids=["comment", "value", "trailing-space", "other-file", "new-file"],
)
def test_any_byte_change_gives_another_revision(tmp_path: Path, path: str, content: str) -> None:
    root = put(tmp_path / "p", {"a.yaml": policy(name="a"), "sub/b.yml": policy(name="b")})
    before = load(root).revision
    put(root, {path: content})
    assert load(root).revision != before


def test_renaming_a_file_gives_another_revision(tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"a.yaml": policy(name="a")})
    before = load(root).revision
    (root / "a.yaml").rename(root / "b.yaml")
    assert load(root).revision != before


KEY_BY_PATH = policy(
    """
    images: ["x.io/a"]
    authorities:
      - name: release
        key: {path: keys/release.pem}
    """
)


def test_a_change_in_a_referenced_key_file_gives_another_revision(tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"p.yaml": KEY_BY_PATH, "keys/release.pem": KEY_A})
    before = load(root)
    assert load(root).revision == before.revision
    put(root, {"keys/release.pem": KEY_B})
    after = load(root)
    assert after.revision != before.revision
    assert after.policies[0].authorities[0].spec == KeyAuthority(public_key=KEY_B)


def test_referenced_files_do_not_tie_the_revision_to_the_directory(tmp_path: Path) -> None:
    files = {"p.yaml": KEY_BY_PATH, "keys/release.pem": KEY_A}
    assert (
        load(put(tmp_path / "one", files)).revision == load(put(tmp_path / "two", files)).revision
    )


def test_a_file_of_exactly_the_size_limit_loads(tmp_path: Path) -> None:
    text = policy() + "#"
    text += "x" * (MAX_FILE_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert load(put(tmp_path / "p", {"p.yaml": text})).files == ("policies/p.yaml",)


# -- 2. revisions are all-or-nothing ----------------------------------------------------------


def test_one_bad_document_among_good_ones_rejects_the_revision(tmp_path: Path) -> None:
    root = put(
        tmp_path / "p",
        {
            "a.yaml": policy(name="a1") + "---\n" + policy(name="a2"),
            "b.yaml": policy(name="b1")
            + "---\n"
            + policy('images: ["x.io/a"]\nmode: Enforce\n', name="b2")
            + "---\n"
            + policy(name="b3"),
            "c.yaml": policy(name="c"),
        },
    )
    with pytest.raises(PolicyLoadError) as info:
        load(root)
    (issue,) = info.value.issues
    assert str(issue.mark) == "policies/b.yaml:14:9"
    assert "must be one of enforce, audit, got 'Enforce'; did you mean 'enforce'?" in issue.message
    assert str(info.value).splitlines()[0] == (
        "1 error in the policy revision; nothing was applied"
    )
    with pytest.raises(PolicyLoadError):
        load_policies(str(root), display=SHOWN)


def test_every_error_of_every_file_is_reported_at_once_in_file_then_line_order(
    tmp_path: Path,
) -> None:
    second = policy(
        """
        images: ["x.io/a"]
        authorities:
          - name: k
            keyles: {}
        """,
        name="a2",
    )
    root = put(
        tmp_path / "p",
        {
            # In a.yaml the authority's unknown key (line 17) is found before its missing kind
            # (line 16), and lines 16/17 sort after 6/7 only as numbers.
            "sub/c.yaml": "key: [unclosed\n",
            "b.yaml": policy('images: ["x.io/a"]\nnamespace: [prod]\n', name="b"),
            "a.yaml": policy("images: [nginx]\nmode: audti\n", name="a1") + "---\n" + second,
            "ok.yaml": policy(name="ok"),
        },
    )
    with pytest.raises(PolicyLoadError) as info:
        load(root)
    issues = info.value.issues
    assert len(issues) == 6
    assert marks(issues) == [
        "policies/a.yaml:6:12",
        "policies/a.yaml:7:9",
        "policies/a.yaml:16:7",
        "policies/a.yaml:17:7",
        "policies/b.yaml:7:3",
        "policies/sub/c.yaml:2:1",
    ]
    fragments = [
        "write 'docker.io/library/nginx'",
        "did you mean 'audit'?",
        "needs exactly one of: key, keyless, notation (got 0)",
        "unknown key 'keyles' in spec.authorities[0]; did you mean 'keyless'?",
        "unknown key 'namespace' in spec; did you mean 'namespaces'?",
        "YAML syntax error",
    ]
    for issue, fragment in zip(issues, fragments, strict=True):
        assert fragment in issue.message
    lines = str(info.value).splitlines()
    assert lines[0] == "6 errors in the policy revision; nothing was applied"
    assert lines[1:] == [str(i) for i in issues]


# -- 3. bad inputs, one table -----------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    files: Mapping[str, str | bytes] | None  # None: the directory does not exist
    expect: tuple[tuple[str, str], ...]  # (FILE:LINE:COL, message fragment), every issue's mark
    bug: str = ""


def bad(
    id: str,
    files: str | Mapping[str, str | bytes] | None,
    where: str,
    fragment: str,
    *more: str,
    bug: str = "",
) -> Bad:
    """A case: ``files`` (a text is ``p.yaml``), then one or more (position, fragment) pairs."""
    if isinstance(files, str):
        files = {"p.yaml": files}
    return Bad(id, files, ((where, fragment), *zip(more[::2], more[1::2], strict=True)), bug)


def meta(name_line: str, spec: str = IMAGES) -> str:
    return policy(spec).replace("  name: p\n", name_line, 1)


KEY_PATH = "key: {path: key.pem}"
CA_STORE = "trustStore: {type: ca, path: ca.pem}"
FULCIO = "issuer: https://token.actions.githubusercontent.com"


def authority(body: str) -> str:
    """An ImagePolicy with one authority named k: ``body`` starts on line 9 at column 7."""
    lines = textwrap.indent(textwrap.dedent(body).lstrip("\n"), "    ")
    return policy(f'images: ["x.io/a"]\nauthorities:\n  - name: k\n{lines}')


BAD = [
    # -- YAML itself -------------------------------------------------------------------------
    bad(
        "yaml-unclosed-bracket",
        policy('images: ["x.io/a"\nmode: audit\n'),
        "policies/p.yaml:7:3",
        "did not find expected ',' or ']'",
    ),
    bad(
        "yaml-bad-indentation",
        policy('images: ["x.io/a"]\n mode: audit\n'),
        "policies/p.yaml:7:4",
        "YAML syntax error: did not find expected key",
    ),
    bad(
        "yaml-tab",
        policy("") + '\timages: ["x.io/a"]\n',
        "policies/p.yaml:6:1",
        "YAML syntax error: found character that cannot start any token",
    ),
    bad(
        "yaml-tab-is-named",
        policy("") + '\timages: ["x.io/a"]\n',
        "policies/p.yaml:6:1",
        "tab",
    ),
    bad(
        "yaml-duplicate-key",
        policy('images: ["x.io/a"]\nimages: ["x.io/b"]\n'),
        "policies/p.yaml:7:3",
        "duplicate key 'images' (first at line 6); remove one",
    ),
    bad(
        "yaml-duplicate-key-in-flow-mapping",
        authority("key: {path: key.pem, path: other.pem}"),
        "policies/p.yaml:9:28",
        "duplicate key 'path' (first at line 9); remove one",
    ),
    bad(
        "yaml-python-scalar-tag",
        policy('images: ["x.io/a"]\nmode: !!python/name:os.system ""\n'),
        "policies/p.yaml:7:9",
        "'tag:yaml.org,2002:python/name:os.system' is not allowed; policies hold plain data only",
    ),
    bad(
        "yaml-python-apply-tag-on-a-list",
        policy('images: !!python/object/apply:os.system ["x.io/a"]\n'),
        "policies/p.yaml:6:11",
        "'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
    ),
    bad(
        "yaml-merge-key",
        policy('<<: {mode: audit}\nimages: ["x.io/a"]\n'),
        "policies/p.yaml:6:3",
        "YAML merge keys ('<<') are not supported",
    ),
    bad(
        "yaml-unquoted-date",
        policy(
            'images: ["x.io/a"]\nrules:\n  - name: r\n    expr: "true"\n    message: 2027-01-31\n'
        ),
        "policies/p.yaml:10:16",
        "(quote it)",
    ),
    # -- document shape ----------------------------------------------------------------------
    bad(
        "document-is-a-list",
        "- apiVersion: pullgate.dev/v1alpha1\n- kind: ImagePolicy\n",
        "policies/p.yaml:1:1",
        "the document must be a mapping, got a list",
    ),
    bad(
        "wrong-api-version",
        policy().replace("v1alpha1", "v1"),
        "policies/p.yaml:1:13",
        "apiVersion must be 'pullgate.dev/v1alpha1', got 'pullgate.dev/v1'",
    ),
    bad(
        "unknown-kind",
        policy().replace("kind: ImagePolicy", "kind: ImagePolcy"),
        "policies/p.yaml:2:7",
        "got 'ImagePolcy'; did you mean 'ImagePolicy'?",
    ),
    bad(
        "missing-metadata-name",
        meta("  labels: {team: a}\n"),
        "policies/p.yaml:4:3",
        "metadata is missing the required key 'name'",
    ),
    bad(
        "name-not-dns-1123",
        meta("  name: Prod_1\n"),
        "policies/p.yaml:4:9",
        "'Prod_1' must be a DNS-1123 label: lower-case letters, digits and '-'",
    ),
    bad(
        "name-too-long",
        meta(f"  name: {'a' * 64}\n"),
        "policies/p.yaml:4:9",
        "at most 63 characters",
    ),
    bad(
        "name-is-an-int",
        meta("  name: 123\n"),
        "policies/p.yaml:4:9",
        "metadata.name must be a string, got an integer (quote it)",
    ),
    # -- unknown keys at every level, with suggestions --------------------------------------
    bad(
        "unknown-top-level-key",
        policy() + "specs: {}\n",
        "policies/p.yaml:7:1",
        "unknown key 'specs' in the document; did you mean 'spec'?",
    ),
    bad(
        "unknown-metadata-key",
        meta("  name: p\n  label: {team: a}\n"),
        "policies/p.yaml:5:3",
        "unknown key 'label' in metadata; did you mean 'labels'?",
    ),
    bad(
        "unknown-spec-key",
        policy('images: ["x.io/a"]\nnamespace: [prod]\n'),
        "policies/p.yaml:7:3",
        "unknown key 'namespace' in spec; did you mean 'namespaces'?",
    ),
    bad(
        "unknown-authority-key",
        authority("keyles: {}"),
        "policies/p.yaml:8:7",
        "authority 'k' needs exactly one of: key, keyless, notation (got 0)",
        "policies/p.yaml:9:7",
        "unknown key 'keyles' in spec.authorities[0]; did you mean 'keyless'?",
    ),
    bad(
        "unknown-key-key",
        authority("key:\n  path: key.pem\n  tlg: required"),
        "policies/p.yaml:11:9",
        "unknown key 'tlg' in authority 'k'.key; did you mean 'tlog'?",
    ),
    bad(
        "unknown-keyless-key",
        authority(f"keyless:\n  {FULCIO}\n  subject: a@acme.example\n  ctLog: required"),
        "policies/p.yaml:12:9",
        "unknown key 'ctLog' in authority 'k'.keyless; did you mean 'ctlog'?",
    ),
    bad(
        "unknown-notation-key",
        authority(f"notation:\n  {CA_STORE}\n  trustedIdentities: ['*']\n  levl: strict"),
        "policies/p.yaml:12:9",
        "unknown key 'levl' in authority 'k'.notation; did you mean 'level'?",
    ),
    bad(
        "unknown-rule-key",
        policy('images: ["x.io/a"]\nrules:\n  - name: r\n    expr: "true"\n    mesage: hi\n'),
        "policies/p.yaml:10:7",
        "unknown key 'mesage' in spec.rules[0]; did you mean 'message'?",
    ),
    # -- wrong types and values --------------------------------------------------------------
    bad(
        "images-is-a-string",
        policy("images: x.io/a\n"),
        "policies/p.yaml:6:11",
        "spec.images must be a list, got a string",
    ),
    bad(
        "when-is-a-bool",
        policy('images: ["x.io/a"]\nwhen: true\n'),
        "policies/p.yaml:7:9",
        "spec.when must be a string, got a boolean (quote it)",
    ),
    bad(
        "tlog-is-a-bool",
        authority("key:\n  path: key.pem\n  tlog: yes"),
        "policies/p.yaml:11:15",
        "authority 'k'.key.tlog must be one of required, optional, got a boolean",
    ),
    bad(
        "images-empty",
        policy("images: []\n"),
        "policies/p.yaml:6:11",
        "spec.images must list at least one entry",
    ),
    bad(
        "images-missing",
        policy("mode: audit\n"),
        "policies/p.yaml:6:3",
        "spec is missing the required key 'images'",
    ),
    bad(
        "mode-typo",
        policy('images: ["x.io/a"]\nmode: audti\n'),
        "policies/p.yaml:7:9",
        "spec.mode must be one of enforce, audit, got 'audti'; did you mean 'audit'?",
    ),
    bad(
        "rule-without-name",
        policy('images: ["x.io/a"]\nrules:\n  - expr: "true"\n'),
        "policies/p.yaml:8:7",
        "spec.rules[0] is missing the required key 'name'",
    ),
    # -- names -------------------------------------------------------------------------------
    bad(
        "duplicate-policy-name-across-files",
        {"a.yaml": policy(), "b.yaml": policy('images: ["x.io/b"]')},
        "policies/b.yaml:1:1",
        "duplicate ImagePolicy name 'p' (first defined at policies/a.yaml:1:1); names must be "
        "unique in the directory",
    ),
    bad(
        "duplicate-rule-name",
        policy(
            'images: ["x.io/a"]\nrules:\n  - name: r\n    expr: "true"\n'
            '  - name: r\n    expr: "false"\n'
        ),
        "policies/p.yaml:10:13",
        "duplicate rule name 'r' (first at line 8)",
    ),
    bad(
        "duplicate-authority-name",
        policy('images: ["x.io/a"]\nauthorities:\n' + f"  - name: k\n    {KEY_PATH}\n" * 2),
        "policies/p.yaml:10:13",
        "duplicate authority name 'k' (first at line 8)",
    ),
    # -- authorities -------------------------------------------------------------------------
    bad(
        "authority-with-two-kinds",
        authority(f"{KEY_PATH}\nkeyless: {{{FULCIO}, subject: a@acme.example}}"),
        "policies/p.yaml:8:7",
        "authority 'k' needs exactly one of: key, keyless, notation (got 2)",
    ),
    bad(
        "authority-without-kind",
        authority(""),
        "policies/p.yaml:8:7",
        "authority 'k' needs exactly one of: key, keyless, notation (got 0)",
    ),
    bad(
        "key-with-public-key-and-path",
        authority("key:\n  path: key.pem\n  publicKey: inline"),
        "policies/p.yaml:10:9",
        "authority 'k'.key needs exactly one of 'publicKey' (inline PEM) or 'path'",
    ),
    bad(
        "key-bad-pem",
        authority("key:\n  publicKey: not a key"),
        "policies/p.yaml:10:20",
        "not a PEM public key; paste the output of 'cosign public-key'",
    ),
    bad(
        "key-rsa-1024",
        authority("key:\n  path: rsa1024.pem"),
        "policies/p.yaml:10:15",
        "RSA key of 1024 bits is too weak; use at least 2048",
    ),
    bad(
        "key-path-does-not-exist",
        authority("key:\n  path: missing.pem"),
        "policies/p.yaml:10:15",
        "cannot read 'missing.pem': No such file or directory",
    ),
    bad(
        "keyless-subject-regexp-unanchored",
        authority(f"keyless:\n  {FULCIO}\n  subjectRegExp: 'https://github\\.com/acme/.*'"),
        "policies/p.yaml:11:24",
        "is not anchored; RE2 matches anywhere in the identity, so write '^...$'",
    ),
    bad(
        "keyless-subject-regexp-not-re2",
        authority(f"keyless:\n  {FULCIO}\n  subjectRegExp: '^(a+)\\1$'"),
        "policies/p.yaml:11:24",
        "authority 'k'.keyless.subjectRegExp is not a valid RE2 regular expression",
    ),
    bad(
        "keyless-without-subject",
        authority(f"keyless:\n  {FULCIO}"),
        "policies/p.yaml:10:9",
        "needs exactly one of 'subject' (exact match) or 'subjectRegExp' (RE2)",
    ),
    bad(
        "notation-identity-without-st",
        authority(
            f"notation:\n  {CA_STORE}\n  trustedIdentities: ['x509.subject: C=US, O=Acme Rockets']"
        ),
        "policies/p.yaml:11:29",
        "lacks ST; Notation requires C, ST and O",
    ),
    bad(
        "notation-star-mixed-with-others",
        authority(
            f"notation:\n  {CA_STORE}\n"
            "  trustedIdentities: ['*', 'x509.subject: C=US, ST=WA, O=Acme Rockets']"
        ),
        "policies/p.yaml:11:28",
        "trustedIdentities: '*' must be the only entry",
    ),
    # -- globs and digests -------------------------------------------------------------------
    bad(
        "image-glob-without-registry",
        policy("images: [nginx]\n"),
        "policies/p.yaml:6:12",
        "does not start with a registry, but globs match the full normalised name "
        "registry/repository: write 'docker.io/library/nginx'",
    ),
    bad(
        "image-glob-double-star-inside-a-segment",
        policy('images: ["ghcr.io/acme**"]\n'),
        "policies/p.yaml:6:12",
        "'**' must be a whole path segment (use '*' within a segment, '**' between slashes)",
    ),
    bad(
        "image-glob-upper-case",
        policy('images: ["ghcr.io/Acme/*"]\n'),
        "policies/p.yaml:6:12",
        "has upper-case letters, but names are lower-case; write 'ghcr.io/acme/*'",
    ),
    bad(
        "exclude-glob-empty-segment",
        policy('images: ["ghcr.io/**"]\nexclude: ["ghcr.io//x"]\n'),
        "policies/p.yaml:7:13",
        "has an empty path segment; remove the extra '/'",
    ),
    bad(
        "namespace-glob-bad-character",
        policy('images: ["x.io/a"]\nnamespaces: [kube_system]\n'),
        "policies/p.yaml:7:16",
        "namespace glob 'kube_system' has characters that never occur in namespaces: '_'",
    ),
    bad(
        "digest-too-short",
        policy('images: ["x.io/a"]\ndigests: ["sha256:abc"]\n'),
        "policies/p.yaml:7:13",
        "a sha256 digest has exactly 64 hex digits, got 3; copy the full digest",
    ),
    # -- files and directories ---------------------------------------------------------------
    bad(
        "file-over-1-mib",
        policy() + "#" + "x" * MAX_FILE_BYTES + "\n",
        "policies/p.yaml:1:1",
        "more than limits.policyFileBytes (1048576 bytes); split it into several files, "
        "or raise limits.policyFileBytes",
    ),
    bad(
        "file-not-utf8",
        {"p.yaml": policy().encode() + b"# caf\xe9\n"},
        "policies/p.yaml:1:1",
        "not UTF-8 text (byte 104); save it as UTF-8",
    ),
    bad(
        "empty-directory",
        {},
        "policies:1:1",
        "no ImagePolicy documents in 0 YAML file(s); an empty policy set is refused",
    ),
    bad(
        "only-a-policy-test",
        {"t.yaml": POLICY_TEST},
        "policies:1:1",
        "no ImagePolicy documents in 1 YAML file(s); an empty policy set is refused",
    ),
    bad("missing-directory", None, "policies:1:1", "policy directory does not exist"),
]


def params(cases: list[Bad] | list[Cel]) -> list[Any]:
    """Table rows as pytest params; a row that shows an engine bug is a strict xfail."""
    return [
        pytest.param(c, id=c.id, marks=pytest.mark.xfail(strict=True, reason=c.bug))
        if c.bug
        else pytest.param(c, id=c.id)
        for c in cases
    ]


def test_the_bad_input_table_is_big_enough() -> None:
    assert len(BAD) >= 30
    assert len({c.id for c in BAD}) == len(BAD)


@pytest.mark.parametrize("case", params(BAD))
def test_bad_input_is_reported_where_it_is(case: Bad, tmp_path: Path) -> None:
    root = tmp_path / "policies"
    if case.files is not None:
        put(root, {**side_files(), **case.files})
    issues = issues_of(root)
    shown = "\n".join(map(str, issues))
    # Every issue is at an expected position (a follow-up message at the same spot is allowed),
    # and at every expected position some issue says what to do.
    assert set(marks(issues)) == {where for where, _ in case.expect}, shown
    for where, fragment in case.expect:
        assert any(str(i.mark) == where and fragment in i.message for i in issues), shown


def test_yaml_python_tags_are_refused_without_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    # The payload is live: an unsafe loader runs it.
    yaml.unsafe_load(f"x: {payload}")
    assert marker.exists()
    marker.unlink()

    text = policy(
        f"""
        images: {payload}
        mode: !!python/name:os.system ""
        exclude: !!python/object/new:os.system {{args: ["touch {marker}"]}}
        """
    )
    root = put(tmp_path / "p", {"p.yaml": text})
    for loader in (load, lambda r: load_policies(str(r), display=SHOWN)):
        with pytest.raises(PolicyLoadError) as info:
            loader(root)
        assert any("python/name:os.system' is not allowed" in i.message for i in info.value.issues)
        assert not marker.exists()


# -- 4. CEL, checked at load ------------------------------------------------------------------


@dataclass(frozen=True)
class Cel:
    id: str
    spec: str
    where: str
    fragment: str
    bug: str = ""


def rule(expr: str) -> str:
    """A spec whose one rule's ``expr:`` value starts on line 9 at column 13."""
    return f'images: ["x.io/a"]\nrules:\n  - name: r\n    expr: {expr}\n'


def rule_with_authority(expr: str) -> str:
    """As :func:`rule`, after an authority named release: the value is on line 12, column 13."""
    return (
        f'images: ["x.io/a"]\nauthorities:\n  - name: release\n    {KEY_PATH}\n'
        f"rules:\n  - name: r\n    expr: {expr}\n"
    )


def when(expr: str) -> str:
    """A spec whose ``when:`` value starts on line 7 at column 9."""
    return f'images: ["x.io/a"]\nwhen: {expr}\n'


CEL = [
    Cel("syntax-error", rule('image.tag = "x"'), "9:23", "CEL syntax error"),
    Cel(
        "unknown-name",
        rule('imag.tag == "x"'),
        "9:13",
        "unknown name 'imag'; did you mean 'image'?",
    ),
    Cel(
        "unknown-function-with-hint",
        rule('image.tag.lowerAscii() == "x"'),
        "9:23",
        "unknown function 'lowerAscii'; pullgate's CEL has no string extensions",
    ),
    Cel(
        "unknown-field-plain",
        rule('image.tagg == "x"'),
        "9:19",
        "image has no field 'tagg'; did you mean 'tag'?",
    ),
    Cel(
        "unknown-field-double-quoted",
        rule("\"image.tagg == 'x'\""),
        "9:20",
        "image has no field 'tagg'; did you mean 'tag'?",
    ),
    Cel(
        "unknown-field-single-quoted",
        rule("'image.tagg == \"x\"'"),
        "9:20",
        "image has no field 'tagg'; did you mean 'tag'?",
    ),
    Cel(
        "unknown-field-literal-block",
        rule('|\n      image.tag == "x" &&\n        image.tagg == "y"'),
        "11:17",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-folded-block",
        rule('>-\n      image.tag == "x" &&\n      image.tagg == "y"'),
        "11:15",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-multi-line-plain",
        rule('image.tag == "x" &&\n      image.tagg == "y"'),
        "10:15",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-after-escaped-double-quotes",
        rule('"image.annotations[\\"a\\"] == image.tagg"'),
        "9:48",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-after-doubled-single-quotes",
        rule("'image.annotations[''a''] == image.tagg'"),
        "9:48",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-literal-block-after-blank-line",
        rule('|\n\n      image.tagg == "y"'),
        "11:15",
        "image has no field 'tagg'",
    ),
    Cel(
        "unknown-field-in-when",
        when("image.tagg == 'x'"),
        "7:15",
        "spec.when: image has no field 'tagg'; did you mean 'tag'?",
    ),
    Cel(
        "unknown-authority-name",
        rule_with_authority('authorities["relase"].verified'),
        "12:25",
        "authorities has no entry 'relase'; did you mean 'release'? (declared: release)",
    ),
    Cel(
        "unknown-authority-field",
        rule_with_authority('authorities["release"].verifed'),
        "12:36",
        "an authority has no field 'verifed'; did you mean 'verified'?",
    ),
    Cel(
        "reserved-word",
        rule('namespace == "prod"'),
        "9:13",
        "'namespace' is a reserved word in CEL",
    ),
    Cel(
        "yields-a-string",
        rule("image.tag"),
        "9:13",
        "rule 'r': yields a string, but must yield true or false",
    ),
    Cel(
        "compares-a-string-with-an-int",
        rule("image.tag == 1"),
        "9:26",
        "compares a string with an int; CEL has no implicit conversions",
    ),
    Cel(
        "fails-on-any-input",
        rule('image.size + "x" == "y"'),
        "9:13",
        "rule 'r': fails on any input: no such overload for (int, string)",
    ),
    Cel(
        "when-uses-signatures",
        when("signatures.size() > 0"),
        "7:9",
        "cannot use 'signatures': move the condition into a rule",
    ),
    Cel(
        "when-uses-authorities",
        when('authorities["release"].verified'),
        "7:9",
        "cannot use 'authorities': move the condition into a rule",
    ),
    Cel(
        "invalid-timestamp-literal",
        rule('now < timestamp("2027-13-01")'),
        "9:29",
        "invalid timestamp literal '2027-13-01'",
    ),
    Cel(
        "invalid-duration-literal",
        rule('now - timestamp("2026-01-01T00:00:00Z") < duration("3 days")'),
        "9:64",
        "invalid duration literal '3 days'",
    ),
    Cel(
        "invalid-matches-regex-literal",
        rule('image.tag.matches("(a")'),
        "9:31",
        "invalid RE2 regular expression '(a'",
    ),
    Cel(
        "invalid-matches-regex-literal-global",
        rule('matches(image.tag, "v(1")'),
        "9:32",
        "invalid RE2 regular expression 'v(1'",
    ),
]


@pytest.mark.parametrize("case", params(CEL))
def test_cel_errors_are_reported_inside_the_expression(case: Cel, tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"p.yaml": policy(case.spec), "key.pem": KEY_A})
    load(root)  # the documents are valid; only their CEL is not
    issues = issues_of(root, compile_cel=True)
    assert [(str(i.mark), case.fragment in i.message) for i in issues] == [
        (f"policies/p.yaml:{case.where}", True)
    ], "\n".join(map(str, issues))


# -- 5. schema and CEL errors in one report ---------------------------------------------------


def test_schema_and_cel_errors_are_reported_together(tmp_path: Path) -> None:
    root = put(
        tmp_path / "p",
        {
            "a.yaml": policy(
                """
                images: ["x.io/a"]
                mode: audti
                rules:
                  - name: r
                    expr: image.tagg == 'x'
                """,
                name="a",
            ),
            "b.yaml": policy(rule("imag.tag == 'x'"), name="b"),
            "c.yaml": policy(name="c"),
        },
    )
    schema_only = issues_of(root)
    assert marks(schema_only) == ["policies/a.yaml:7:9"]

    issues = issues_of(root, compile_cel=True)
    assert marks(issues) == [
        "policies/a.yaml:7:9",
        "policies/a.yaml:10:19",
        "policies/b.yaml:9:13",
    ]
    assert "did you mean 'audit'?" in issues[0].message
    assert issues[1].message.startswith("rule 'r': image has no field 'tagg'")
    assert issues[2].message.startswith("rule 'r': unknown name 'imag'")


def test_a_rule_over_an_invalid_authority_gets_no_spurious_name_error(tmp_path: Path) -> None:
    spec = """
        images: ["x.io/a"]
        authorities:
          - name: release
            key: {publicKey: not a key}
        rules:
          - name: r
            expr: authorities["release"].verified && image.tagg == "x"
        """
    root = put(tmp_path / "p", {"p.yaml": policy(spec)})
    issues = issues_of(root, compile_cel=True)
    assert marks(issues) == ["policies/p.yaml:9:24", "policies/p.yaml:12:54"]
    assert "not a PEM public key" in issues[0].message
    assert "image has no field 'tagg'" in issues[1].message


def test_a_valid_rule_over_two_invalid_authorities_is_not_reported(tmp_path: Path) -> None:
    spec = """
        images: ["x.io/a"]
        authorities:
          - name: a
            key: {publicKey: not a key}
          - name: b
            key: {publicKey: not a key either}
        rules:
          - name: either
            expr: authorities["a"].verified || authorities["b"].verified
        """
    root = put(tmp_path / "p", {"p.yaml": policy(spec)})
    issues = issues_of(root, compile_cel=True)
    assert marks(issues) == ["policies/p.yaml:9:24", "policies/p.yaml:11:24"]


# -- 6. the models valid documents become -----------------------------------------------------


def full_policy() -> str:
    """Every field set; two authorities carry inline PEMs, spliced in at ``# INLINE``."""
    inline = (
        "    - name: also-release-key\n"
        "      key:\n"
        "        tlog: required\n"
        "        publicKey: |\n"
        f"{indent_pem(KEY_A, 10)}\n"
        "    - name: other-key\n"
        "      key:\n"
        "        publicKey: |\n"
        f"{indent_pem(KEY_B, 10)}\n"
    )
    text = policy(
        f"""
        mode: audit
        images: ["ghcr.io/acme/**", "registry.acme.corp/platform/*"]
        exclude: ["ghcr.io/acme/sandbox/**"]
        namespaces: ["prod-*", payments]
        digests: ["{D1}", "{D2}"]
        when: 'image.tag != "debug"'
        authorities:
          - name: release-key
            key:
              tlog: required
              path: keys/a.pem
          - name: ci
            keyless:
              {FULCIO}
              subjectRegExp: '^https://github\\.com/acme/[^/]+/\\.github/workflows/r\\.yml@.*$'
          - name: notary
            notation:
              {CA_STORE}
              trustedIdentities: ["x509.subject: C=US, ST=WA, O=Acme Rockets"]
              level: audit
        # INLINE
        rules:
          - name: signed
            expr: 'authorities["ci"].verified || authorities["release-key"].verified'
            message: must be signed by the release workflow or the release key
          - name: pinned
            expr: |
              request.operation != "run" || image.digest != ""
          - name: fresh
            expr: signatures.exists(s, has(s.signedAt))
          - name: same-key
            expr: authorities["also-release-key"].verified
        """,
        name="prod-signed",
    )
    return text.replace("  # INLINE\n", inline)


def test_valid_documents_become_the_expected_models(tmp_path: Path) -> None:
    root = put(
        tmp_path / "p",
        {
            "p.yaml": full_policy(),
            "a-first.yaml": policy(name="a-first"),
            "keys/a.pem": KEY_A,
            "ca.pem": ca_pem(),
        },
    )
    loaded = load(root)

    assert [p.name for p in loaded.policies] == ["a-first", "prod-signed"]  # sorted by name
    first, p = loaded.policies
    assert first.mode == "enforce" and first.when is None and first.rules == ()
    assert first.authorities == () and first.digests == frozenset() and first.namespaces == ()

    assert p.mode == "audit"
    assert str(p.mark) == "policies/p.yaml:1:1"
    assert all(isinstance(g, Glob) for g in (*p.images, *p.exclude, *p.namespaces))
    assert [(g.pattern, g.prefix) for g in p.images] == [
        ("ghcr.io/acme/**", ("ghcr.io", "acme")),
        ("registry.acme.corp/platform/*", ("registry.acme.corp", "platform")),
    ]
    assert p.images[0].match("ghcr.io/acme/a/b") and not p.images[0].match("ghcr.io/acme")
    assert p.images[1].match("registry.acme.corp/platform/x")
    assert not p.images[1].match("registry.acme.corp/platform/x/y")
    assert [g.pattern for g in p.exclude] == ["ghcr.io/acme/sandbox/**"]
    assert [g.pattern for g in p.namespaces] == ["prod-*", "payments"]
    assert p.namespaces[0].match("prod-eu") and not p.namespaces[0].match("production")
    assert p.digests == frozenset({D1, D2})

    assert p.when is not None
    assert p.when.text == 'image.tag != "debug"'
    assert (str(p.when.mark), p.when.source) == ("policies/p.yaml:11:9", "'image.tag != \"debug\"'")

    assert [(a.name, a.kind, a.mark.line) for a in p.authorities] == [
        ("release-key", "key", 13),
        ("ci", "keyless", 17),
        ("notary", "notation", 21),
        ("also-release-key", "key", 26),
        ("other-key", "key", 34),
    ]
    release, ci, notary, also, other = p.authorities
    assert release.spec == KeyAuthority(public_key=KEY_A, tlog="required")
    assert isinstance(ci.spec, KeylessAuthority)
    assert ci.spec.issuer == "https://token.actions.githubusercontent.com"
    assert ci.spec.issuer_regexp == "" and ci.spec.subject == ""
    assert ci.spec.subject_regexp == (
        "^https://github\\.com/acme/[^/]+/\\.github/workflows/r\\.yml@.*$"
    )
    assert (ci.spec.trusted_root, ci.spec.ctlog) == ("production", "required")
    assert isinstance(notary.spec, NotationAuthority)
    assert notary.spec.trust_store_type == "ca"
    assert notary.spec.trusted_identities == ("x509.subject: C=US, ST=WA, O=Acme Rockets",)
    assert notary.spec.level == "audit"
    assert notary.spec.certificates == ca_pem()
    # The same key, from a file and inline, under two names: one fingerprint.
    assert also.spec == KeyAuthority(public_key=KEY_A, tlog="required")
    assert also.fingerprint == release.fingerprint
    assert other.spec == KeyAuthority(public_key=KEY_B, tlog="optional")
    assert len({release.fingerprint, other.fingerprint, ci.fingerprint}) == 3
    assert len(release.fingerprint) == 64

    assert [(r.name, r.message) for r in p.rules] == [
        ("signed", "must be signed by the release workflow or the release key"),
        ("pinned", ""),
        ("fresh", ""),
        ("same-key", ""),
    ]
    pinned = p.rules[1].expr
    assert pinned.text == 'request.operation != "run" || image.digest != ""\n'
    assert str(pinned.mark) == "policies/p.yaml:46:13"
    assert pinned.source.startswith("|\n        request.operation")
    assert str(pinned.locate(1, 1)) == "policies/p.yaml:47:9"

    compiled = load_policies(str(root), display=SHOWN)
    assert compiled.revision == loaded.revision
    assert [c.name for c in compiled.policies] == ["a-first", "prod-signed"]
    assert [r.name for r in compiled.policies[1].rules] == ["signed", "pinned", "fresh", "same-key"]


def test_authority_defaults(tmp_path: Path) -> None:
    spec = f"""
        images: ["x.io/a"]
        authorities:
          - name: k
            {KEY_PATH}
          - name: ci
            keyless: {{issuerRegExp: '^https://.*$', subject: a@acme.example}}
          - name: n
            notation: {{{CA_STORE}, trustedIdentities: ["*"]}}
        """
    root = put(tmp_path / "p", {"p.yaml": policy(spec), **side_files()})
    k, ci, n = load(root).policies[0].authorities
    assert k.spec == KeyAuthority(public_key=KEY_A, tlog="optional")
    assert ci.spec == KeylessAuthority(
        issuer_regexp="^https://.*$",
        subject="a@acme.example",
        trusted_root="production",
        ctlog="required",
    )
    assert isinstance(n.spec, NotationAuthority)
    assert (n.spec.level, n.spec.trusted_identities) == ("strict", ("*",))


def test_the_same_key_in_another_line_ending_has_the_same_fingerprint(tmp_path: Path) -> None:
    spec = """
        images: ["x.io/a"]
        authorities:
          - name: unix
            key: {path: unix.pem}
          - name: windows
            key: {path: windows.pem}
        """
    files = {"p.yaml": policy(spec), "unix.pem": KEY_A, "windows.pem": KEY_A.replace("\n", "\r\n")}
    unix, windows = load(put(tmp_path / "p", files)).policies[0].authorities
    assert unix.fingerprint == windows.fingerprint


def test_policy_tests_load_beside_policies(tmp_path: Path) -> None:
    root = put(tmp_path / "p", {"p.yaml": policy(), "t.yaml": POLICY_TEST})
    loaded = load(root)
    assert [t.name for t in loaded.tests] == ["t"]
    assert [c.name for c in loaded.tests[0].cases] == ["c"]
    only_tests = put(tmp_path / "q", {"t.yaml": POLICY_TEST})
    assert load_policy_dir(only_tests, display=SHOWN, require_policies=False).policies == ()
