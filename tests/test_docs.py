"""Every command in the user docs is exercised: run for real, or skipped for a stated reason.

Commands are the ``$ `` lines of fenced ```console blocks (continued by a line ending in ``\\``,
``|``, ``&&`` or ``||``) and every line of ```sh/```bash blocks, in README.md and docs/*.md.
Each document runs, top to bottom, in its own sandbox: a copy of the repository's
``policies/`` and ``samples/``, ``.venv/bin`` linked to this virtualenv (also first on PATH),
an empty HOME. A block of YAML that the text before it says to "save as `PATH`" is written
there, as a reader would. A command ending in ``&`` is a daemon: it is started in the
background, waited for until it serves, and stopped when its document ends. A command reaching
``run/demo/pullgate.sock`` (the daemon ``make run`` leaves serving) gets a real daemon from
tests/lab/daemon.py on the sandbox's ``policies/``.

The documented output is what a terminal shows (stdout and stderr, unbuffered, interleaved):
its lines must appear in that order in the real output, ``...`` or ``…`` matching anything and
decision ids any 16 hex digits (policy revisions too, for commands asking a daemon: ``make
run`` serves ``policies/`` plus its demo signer). A command documented without output must
exit 0. Abbreviated digests in a command (``sha256:4a1c...``) are padded with zeros.

The documented outputs were recorded on a machine without internet ("cannot resolve the host
name of ghcr.io (DNS)"); so that they hold wherever the tests run, the commands run with name
resolution refused for every host but the loopback (a sitecustomize in the sandbox, the one
double here: the lack of a network cannot be had otherwise without root).

A command that is neither run nor in SKIPPED fails its document's test, so "every command in
the docs is exercised" stays true as the docs grow.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO
from lab.daemon import BIN, Daemon, start_daemon

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND_LANGS = {"console", "sh", "bash", "shell"}
CONTINUED = re.compile(r"(\\|\||&&)\s*$")
SAVE_AS = re.compile(r"[Ss]ave (?:this|it) as `([^`]+)`")
SHORT_DIGEST = re.compile(r"\bsha256:([0-9a-f]{1,63})(?:\.\.\.|…)")
DEMO_SOCKET = "run/demo/pullgate.sock"
TIMEOUT = 30.0  # seconds for one command: a required bound, not a speed assertion

OFFLINE = '''
"""Name resolution refused for every host but the loopback: the docs' machine without internet."""
import socket

_getaddrinfo = socket.getaddrinfo


def _offline(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost", "::1") and not str(name).startswith("127."):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _offline
'''

# Commands not run here, each with why and where the same thing is exercised instead.
SKIPPED: dict[str, str] = {
    "make run": "builds the venv and serves until Ctrl-C; tests/test_demo.py runs scripts/run-demo",
    "make test": "this suite itself (plus apt-get as root)",
    "make bench": (
        "about 4 minutes of benchmarks (docs/performance.md); `make test` lints bench/ and"
        " tests/test_skopeo_peer.py checks its skopeo peer"
    ),
    "exec /opt/pullgate/venv/bin/pullgate-containerd"
    ' --address unix:///run/pullgate/pullgate.sock "$@"': (
        "the body of samples/containerd/pullgate (test_the_wrapper_sample_is_the_documented_one);"
        " tests/test_containerd_e2e.py runs it as containerd does"
    ),
    "pullgate serve --config /etc/pullgate/pullgate.yaml": (
        "a node's paths (/etc/pullgate, /run/pullgate); every daemon test starts `pullgate serve"
        " --config FILE` (tests/lab/daemon.py), and getting-started.md runs a serve for real"
    ),
    "pullgate verify ghcr.io/acme/app@sha256:0e4f… --policies policies/ --explain": (
        "illustrates a keyless signature from GitHub Actions, which cannot be made here;"
        " tests/test_explain.py asserts this explanation from the same evidence, and"
        " troubleshooting.md's walkthrough runs --explain for real"
    ),
    "sudo install -D -m 0755 samples/containerd/pullgate /opt/pullgate/verifiers/pullgate": (
        "root on a node; tests/test_containerd_e2e.py runs containerd with this wrapper"
    ),
    "sudo install -D -m 0644 samples/containerd/pullgate-verifier.toml"
    " /etc/containerd/conf.d/pullgate-verifier.toml": (
        "root on a node; tests/test_containerd_e2e.py gives containerd the same plugin config"
    ),
    "sudo systemctl restart containerd": "root on a node with systemd",
    "sudo ctr image pull ghcr.io/acme/api:debug-1": (
        "a node's containerd and the internet; tests/test_containerd_e2e.py pulls through a"
        " real containerd 2.x from the test registry"
    ),
    "kubectl describe pod api-7d9f8c6b5-x2x7k -n prod": "needs a cluster",
}


@dataclass
class Step:
    """One command (with its documented output) or one file the reader is told to save."""

    doc: str
    line: int
    command: str = ""
    output: list[str] = field(default_factory=list)
    save_as: str = ""
    text: str = ""

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def _commands(lines: list[str], first: int, lang: str, doc: str) -> Iterator[Step]:
    """The commands of one fenced block (``lines`` without the fences, ``first`` its line)."""
    i = 0
    while i < len(lines):
        line, number = lines[i], first + i
        i += 1
        if lang == "console":
            if not line.startswith("$ "):
                continue
            text = line[2:]
        else:
            text = re.sub(r"\s+#\s.*$", "", line).strip()
            if not text or text.startswith("#"):
                continue
        while CONTINUED.search(text) and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        step = Step(doc, number, command=text)
        if lang == "console":
            while i < len(lines) and not lines[i].startswith("$ "):
                step.output.append(lines[i].rstrip())
                i += 1
            while step.output and not step.output[-1]:
                step.output.pop()
        yield step


def extract(path: Path) -> list[Step]:
    """The commands and the files to save of one markdown file, in order."""
    return extract_text(path.read_text(), path.relative_to(REPO).as_posix())


def extract_text(markdown: str, doc: str) -> list[Step]:
    lines = markdown.splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        lang, start = opening.group(1), i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = lines[start:end]
        if lang in COMMAND_LANGS:
            steps.extend(_commands(body, start + 1, lang, doc))
        else:
            before = " ".join(lines[max(0, i - 3) : i])
            saved = SAVE_AS.search(before)
            if saved:
                steps.append(Step(doc, start, save_as=saved.group(1), text="\n".join(body) + "\n"))
        i = end + 1
    return steps


ANY = re.compile(r"\.\.\.|…")
IDS = re.compile(r"(?<=decision )[0-9a-f]{16}|(?<=decision: )[0-9a-f]{16}")
REVISIONS = re.compile(r"(?<=revision )[0-9a-f]{16}|(?<=revision: )[0-9a-f]{16}")


def pattern(documented: str, daemon: bool) -> re.Pattern[str]:
    """A documented output line as a regex over a real line."""
    wild = [ANY, IDS, REVISIONS] if daemon else [ANY, IDS]
    spans = sorted(m.span() for w in wild for m in w.finditer(documented.rstrip()))
    out, at = [], 0
    for start, end in spans:
        if start < at:
            continue
        out.append(re.escape(documented[at:start]))
        out.append(".*" if ANY.fullmatch(documented[start:end]) else "[0-9a-f]{16}")
        at = end
    out.append(re.escape(documented.rstrip()[at:]))
    return re.compile("".join(out))


def unmatched(documented: list[str], actual: str, daemon: bool) -> str | None:
    """The first documented line not found (in order) in ``actual``, or None."""
    real = [line.rstrip() for line in actual.splitlines()]
    at = 0
    for line in documented:
        if not line.strip():
            continue
        want = pattern(line, daemon)
        while at < len(real) and not want.fullmatch(real[at]):
            at += 1
        if at == len(real):
            return line
        at += 1
    return None


def expand(command: str) -> str:
    """An abbreviated digest in a command, padded to a whole one."""
    return SHORT_DIGEST.sub(lambda m: "sha256:" + m.group(1).ljust(64, "0"), command)


def asks_a_daemon(command: str) -> bool:
    return "--server" in command or "pullgate-containerd" in command or " status " in command


class Sandbox:
    """A reader's checkout: policies/, samples/, .venv/bin, and the daemons they started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("policies", "samples"):
            shutil.copytree(REPO / name, root / name)
        (root / ".venv").mkdir()
        (root / ".venv" / "bin").symlink_to(BIN)
        (root / "home").mkdir()
        (root / ".offline").mkdir()
        (root / ".offline" / "sitecustomize.py").write_text(OFFLINE)
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PULLGATE_")}
        self.env = {
            **keep,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(root / "home"),
            "PWD": str(root),
            "PYTHONPATH": str(root / ".offline"),
            "PYTHONUNBUFFERED": "1",
        }
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.demo: Daemon | None = None

    def save(self, step: Step) -> None:
        path = self.root / step.save_as
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.text)

    def demo_daemon(self) -> None:
        """What `make run` leaves serving, at run/demo/pullgate.sock."""
        if self.demo is not None:
            return
        self.demo = start_daemon(self.root / ".daemon", self.root / "policies", env=self.env)
        link = self.root / DEMO_SOCKET
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.demo.socket)

    def start(self, command: str) -> str:
        """A daemon started with ``&``: its log, once it serves."""
        log = self.root / f".serve-{len(self.background)}.log"
        process = subprocess.Popen(
            ["bash", "-c", "exec " + command],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            start_new_session=True,
        )
        self.background.append((process, log))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text()
            if '"event":"serving"' in text:
                return text
            if process.poll() is not None:
                pytest.fail(f"{command!r} exited {process.returncode}: {text}")
            time.sleep(0.05)
        pytest.fail(f"{command!r} did not serve within {TIMEOUT} s: {log.read_text()}")

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def close(self) -> None:
        for process, _ in self.background:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.demo is not None:
            self.demo.stop()


def exercise(step: Step, sandbox: Sandbox) -> str | None:
    """Run one step; a description of how it differs from the docs, or None."""
    if step.save_as:
        sandbox.save(step)
        return None
    command = expand(step.command)
    if DEMO_SOCKET in command:
        sandbox.demo_daemon()
    if command.rstrip().endswith("&"):
        out = sandbox.start(command.rstrip()[:-1].rstrip())
        missing = unmatched(step.output, out, daemon=True)
        return None if missing is None else f"the daemon's log lacks {missing!r}:\n{out}"
    r = sandbox.run(command)
    if not step.output:
        return (
            None
            if r.returncode == 0
            else f"exit {r.returncode} (no output documented):\n{r.stdout}"
        )
    missing = unmatched(step.output, r.stdout, daemon=asks_a_daemon(command))
    if missing is None:
        return None
    return f"documented line {missing!r} not found (in order) in the output:\n{r.stdout}"


def all_steps() -> list[Step]:
    return [step for path in DOCS for step in extract(path)]


# Documents that start daemons take over ~10 s on the 2-core machine.
SLOW_DOCS = {"README.md", "docs/getting-started.md"}


def doc_param(path: Path) -> object:
    name = path.relative_to(REPO).as_posix()
    marks = [pytest.mark.slow] if name in SLOW_DOCS else []
    return pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", [doc_param(p) for p in DOCS])
def test_every_command_of_the_doc_runs_as_documented_or_is_skipped(
    path: Path, tmp_path: Path
) -> None:
    steps = extract(path)
    sandbox = Sandbox(tmp_path)
    problems = []
    try:
        for step in steps:
            if step.command in SKIPPED:
                continue
            problem = exercise(step, sandbox)
            if problem:
                problems.append(f"{step.where()}: $ {step.command}\n{problem}")
    finally:
        sandbox.close()
    assert not problems, "\n\n".join(problems)


def test_the_docs_have_commands_and_most_of_them_run() -> None:
    commands = [s for s in all_steps() if s.command]
    run = [s for s in commands if s.command not in SKIPPED]
    assert len(commands) >= 20 and len(run) > len(commands) // 2, (len(commands), len(run))


def test_every_skipped_command_is_still_in_the_docs() -> None:
    present = {s.command for s in all_steps()}
    assert sorted(set(SKIPPED) - present) == []


def test_the_wrapper_sample_is_the_documented_one() -> None:
    body = (REPO / "samples" / "containerd" / "pullgate").read_text().splitlines()
    documented = [s.command for s in extract(REPO / "docs" / "deploy.md")]
    assert body[-1] in documented


# -- the extractor and the matcher themselves ------------------------------------------------


def test_console_commands_continue_and_keep_their_output() -> None:
    markdown = (
        "Save this as `a/b.yaml`:\n\n```yaml\nk: v\n```\n\n"
        "```console\n$ printf x |\n    cat \\\n    -\nx\n...\n$ true\n```\n\n"
        "```sh\nmake run    # a comment\n# only a comment\n```\n"
    )
    steps = extract_text(markdown, "x.md")
    assert [(s.save_as, s.text) for s in steps[:1]] == [("a/b.yaml", "k: v\n")]
    assert [(s.command, s.output) for s in steps[1:]] == [
        ("printf x |\n    cat \\\n    -", ["x", "..."]),
        ("true", []),
        ("make run", []),
    ]


def test_the_matcher_finds_lines_in_order_and_fails_otherwise() -> None:
    out = (
        "DENIED x@sha256:4a1c0000\n  reason:   no\n"
        "  revision: 0123456789abcdef   decision: fedcba9876543210\n"
    )
    doc = ["DENIED x@sha256:4a1c...", "  revision: 0123456789abcdef   decision: 5e7a41ce039fd9ec"]
    assert unmatched(doc, out, daemon=False) is None
    assert unmatched(["  reason:   no", "DENIED x@sha256:4a1c..."], out, daemon=False) is not None
    other = ["  revision: aaaaaaaaaaaaaaaa   decision: 5e7a41ce039fd9ec"]
    assert unmatched(other, out, daemon=False) == other[0]
    assert unmatched(other, out, daemon=True) is None
    assert unmatched(["ALLOWED x"], out, daemon=False) == "ALLOWED x"
    assert expand("verify a@sha256:4a1c... b") == "verify a@sha256:4a1c" + "0" * 60 + " b"


def test_the_index_lists_every_doc() -> None:
    index = (REPO / "docs" / "README.md").read_text()
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    present = {p.name for p in DOCS if p.parent.name == "docs" and p.name != "README.md"}
    assert sorted(present - listed) == []
    assert sorted(listed - present) == []
