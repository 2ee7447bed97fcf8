"""Load a policy directory laid out like a Kubernetes ConfigMap volume into a ``PolicySet``.

``*.yaml`` / ``*.yml`` files anywhere below the root are read, names starting with "." are
skipped (that hides a ConfigMap's ``..data`` and ``..<timestamp>`` directories, whose files are
reached through the top-level symlinks), and symlinks are followed only when they resolve
inside the root. Every issue of every file is collected; any issue rejects the revision.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..limits import DEFAULT_LIMITS, Limits, over_limit
from .errors import Issue, Mark, PolicyLoadError
from .model import ImagePolicy, PolicySet, PolicyTest
from .schema import Document, read_document
from .source import parse_documents

__all__ = ["MAX_FILE_BYTES", "ParseCache", "fingerprint", "load_policy_dir"]

MAX_FILE_BYTES = DEFAULT_LIMITS.policy_file_bytes  # limits.policyFileBytes' default
_SUFFIXES = (".yaml", ".yml")


def _display(root_display: str, rel: str) -> str:
    return rel if root_display in ("", ".") else f"{root_display.rstrip('/')}/{rel}"


def _scan(root: Path, root_display: str, issues: list[Issue]) -> list[tuple[str, Path]]:
    """(display path, resolved path) of every policy file, sorted by display path."""
    real_root = os.path.realpath(root)
    inside = real_root.rstrip(os.sep) + os.sep
    found: list[tuple[str, Path]] = []
    visited: set[str] = set()

    def walk(directory: str, rel: str) -> None:
        real = os.path.realpath(directory)
        if real in visited:
            return
        visited.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            issues.append(
                Issue(
                    Mark(_display(root_display, rel) or ".", 1, 1), f"cannot list: {exc.strerror}"
                )
            )
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            entry_rel = f"{rel}/{entry.name}" if rel else entry.name
            display = _display(root_display, entry_rel)
            target = os.path.realpath(entry.path)
            try:
                is_dir = os.path.isdir(target) if entry.is_symlink() else entry.is_dir()
                exists = is_dir or os.path.isfile(target)
            except OSError:
                exists = False
            if not exists:
                if entry.name.endswith(_SUFFIXES):
                    issues.append(Issue(Mark(display, 1, 1), "dangling symlink; fix or remove it"))
                continue
            if target != real_root and not target.startswith(inside):
                issues.append(
                    Issue(
                        Mark(display, 1, 1),
                        f"symlink resolves outside the policy directory (to {target}); refused",
                    )
                )
                continue
            if is_dir:
                walk(entry.path, entry_rel)
            elif entry.name.endswith(_SUFFIXES):
                found.append((display, Path(target)))

    walk(str(root), "")
    return sorted(found)


class _FileRefs:
    """Reads files a policy refers to (``path:`` keys) and remembers them for the revision.

    Relative names resolve against the policy directory; absolute ones (a mounted Secret or
    ConfigMap) are read where they are.
    """

    def __init__(self, root: Path, issues: list[Issue], max_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = root
        self.issues = issues
        self.max_bytes = max_bytes
        self.seen: dict[str, bytes] = {}
        self.calls: list[str] = []

    def __call__(self, name: str, mark: Mark) -> tuple[bytes, str] | None:
        self.calls.append(name)
        path = Path(name) if os.path.isabs(name) else self.root / name
        try:
            data, size = _read_bounded(path, self.max_bytes)
        except OSError as exc:
            self.issues.append(Issue(mark, f"cannot read {name!r}: {exc.strerror}"))
            return None
        if len(data) > self.max_bytes:
            found = f"{name!r} is {size} bytes"
            self.issues.append(Issue(mark, over_limit(found, self.max_bytes, "policyFileBytes")))
            return None
        absolute = str(path.absolute())
        self.seen[absolute] = data
        return data, absolute


def _read_bounded(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, int]:
    """At most ``max_bytes + 1`` bytes of the file, and its size (to say how much over)."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
        size = os.fstat(f.fileno()).st_size if len(data) > max_bytes else len(data)
    return data, max(size, len(data))


class ParseCache:
    """The valid documents of each file, by display path and content, so a reload parses and
    validates only the files that changed (a ConfigMap swap usually changes one of many).

    Only files that parsed without an issue and read no other file (``path:``) are kept: a
    file read through ``path:`` can change while the policy file does not. Documents are
    immutable, so one revision's can be the next one's.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[str, bytes], tuple[Document, ...]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, display_path: str, data: bytes) -> tuple[Document, ...] | None:
        key = (display_path, hashlib.sha256(data).digest())
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def put(self, display_path: str, data: bytes, documents: tuple[Document, ...]) -> None:
        key = (display_path, hashlib.sha256(data).digest())
        with self._lock:
            self._entries[key] = documents
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


def _parse_file(
    text: str, display_path: str, refs: _FileRefs, max_documents: int
) -> tuple[list[tuple[Document | None, list[Issue]]], list[Issue], bool]:
    """(each document's model and issues, the file's syntax issues, whether it read a file)."""
    read_before = len(refs.calls)
    docs, syntax = parse_documents(text, display_path)
    if len(docs) > max_documents:
        found = f"the file has {len(docs)} YAML documents"
        fix = "split it into several files"
        issue = Issue(
            docs[max_documents].mark,
            over_limit(found, max_documents, "documentsPerFile", "documents", fix),
        )
        return [], [*syntax, issue], False
    models = [read_document(doc, refs) for doc in docs]
    return models, syntax, len(refs.calls) > read_before


def _revision(contents: list[tuple[str, bytes]], refs: dict[str, bytes], root_display: str) -> str:
    """The revision id: a hash of every file's path below the root and bytes, and of the
    referenced files' bytes. How the root is written (``policies``, ``./policies``, an absolute
    path) does not change it, so a revision seen in CI is the one a node reports."""
    prefix = _display(root_display, "")
    digest = hashlib.sha256()
    for display_path, data in contents:
        name = display_path.removeprefix(prefix) if prefix else display_path
        digest.update(name.encode() + b"\0" + data + b"\0")
    for _, data in sorted(refs.items()):  # by absolute path; the names are in the files
        digest.update(b"ref\0" + data + b"\0")
    return digest.hexdigest()[:16]


def fingerprint(
    root: str | os.PathLike[str], references: tuple[str, ...] = (), *, display: str | None = None
) -> str | None:
    """The revision ``root`` would load as, without parsing anything.

    ``references`` are the files the last load read through ``path:`` keys. Returns None when
    something cannot be read (a full load will say what).
    """
    root_path = Path(root)
    shown = display if display is not None else str(root)
    if not root_path.is_dir():
        return None
    issues: list[Issue] = []
    files = _scan(root_path, shown, issues)
    try:
        contents = [(d, real.read_bytes()) for d, real in files]
        refs = {name: Path(name).read_bytes() for name in references}
    except OSError:
        return None
    return None if issues else _revision(contents, refs, shown)


def load_policy_dir(
    root: str | os.PathLike[str],
    *,
    display: str | None = None,
    require_policies: bool = True,
    cache: ParseCache | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> PolicySet:
    """Load and validate every document below ``root``; with a ``cache``, files whose content
    it has seen are not parsed again. ``limits`` bounds file sizes and documents per file.

    Raises :class:`PolicyLoadError` with every issue when anything is wrong, including a
    directory without any ``ImagePolicy`` (unless ``require_policies`` is false).
    """
    root_path = Path(root)
    shown = display if display is not None else str(root)
    if not root_path.is_dir():
        what = "does not exist" if not root_path.exists() else "is not a directory"
        raise PolicyLoadError([Issue(Mark(shown, 1, 1), f"policy directory {what}")])
    issues: list[Issue] = []
    files = _scan(root_path, shown, issues)
    refs = _FileRefs(root_path, issues, limits.policy_file_bytes)
    max_bytes = limits.policy_file_bytes
    contents: list[tuple[str, bytes]] = []
    policies: list[ImagePolicy] = []
    tests: list[PolicyTest] = []
    first_seen: dict[tuple[str, str], Mark] = {}
    partial: list[ImagePolicy] = []  # documents with issues, kept to check their CEL too

    for display_path, real in files:
        try:
            data, size = _read_bounded(real, max_bytes)
        except OSError as exc:
            issues.append(Issue(Mark(display_path, 1, 1), f"cannot read: {exc.strerror}"))
            continue
        if len(data) > max_bytes:
            got = f"the file is {size} bytes"
            fix = "split it into several files"
            message = over_limit(got, max_bytes, "policyFileBytes", fix=fix)
            issues.append(Issue(Mark(display_path, 1, 1), message))
            continue
        contents.append((display_path, data))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.append(
                Issue(
                    Mark(display_path, 1, 1), f"not UTF-8 text (byte {exc.start}); save it as UTF-8"
                )
            )
            continue
        cached = cache.get(display_path, data) if cache is not None else None
        if cached is not None:
            models: list[tuple[Document | None, list[Issue]]] = [(m, []) for m in cached]
        else:
            models, syntax, read_files = _parse_file(
                text, display_path, refs, limits.documents_per_file
            )
            issues.extend(syntax)
            clean = not syntax and all(m is not None and not f for m, f in models)
            if cache is not None and clean and not read_files:
                cache.put(display_path, data, tuple(m for m, _ in models if m is not None))
        for model, found in models:
            issues.extend(found)
            if model is None:
                continue
            if found:
                assert isinstance(model, ImagePolicy)
                partial.append(model)
                continue
            kind = "ImagePolicy" if isinstance(model, ImagePolicy) else "PolicyTest"
            key = (kind, model.name)
            if key in first_seen:
                issues.append(
                    Issue(
                        model.mark,
                        f"duplicate {kind} name {model.name!r} (first defined at "
                        f"{first_seen[key]}); names must be unique in the directory",
                    )
                )
                if isinstance(model, ImagePolicy):
                    partial.append(model)
                continue
            first_seen[key] = model.mark
            if isinstance(model, ImagePolicy):
                policies.append(model)
            else:
                tests.append(model)

    if not issues and not policies and (require_policies or not tests):
        what = "ImagePolicy" if require_policies else "ImagePolicy or PolicyTest"
        issues.append(
            Issue(
                Mark(shown, 1, 1),
                f"no {what} documents in {len(files)} YAML file(s); an empty policy set is refused",
            )
        )
    if issues:
        raise PolicyLoadError(issues, partial=[*policies, *partial], complete=len(policies))
    return PolicySet(
        root=str(root_path),
        revision=_revision(contents, refs.seen, shown),
        references=tuple(sorted(refs.seen)),
        policies=tuple(sorted(policies, key=lambda p: p.name)),
        tests=tuple(tests),
        files=tuple(d for d, _ in files),
    )
