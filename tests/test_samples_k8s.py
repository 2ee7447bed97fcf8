"""samples/kubernetes and samples/gitops: the manifests parse, carry the fields Kubernetes
requires, agree with each other and with samples/containerd (socket, bin_dir, ConfigMap names and
keys, labels, images, resources), the policies they ship pass ``pullgate check`` and ``pullgate
test``, the installer places the node's files, and the probes' ``pullgate health`` answers from
a real daemon serving the ConfigMap's policies."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from conftest import REPO, write_files
from lab.daemon import BIN, DIGEST
from pullgate.config import load_config

K8S = REPO / "samples" / "kubernetes"
GITOPS = REPO / "samples" / "gitops"
CONTAINERD = REPO / "samples" / "containerd"
PULLGATE = Path(sys.executable).parent / "pullgate"
NAMESPACE = "pullgate-system"
NAMESPACED = {"ConfigMap", "Secret", "DaemonSet", "ServiceAccount"}


def run(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=60, env=env)


def manifests() -> list[dict[str, Any]]:
    """Every document of every manifest in samples/kubernetes (safe_load, multi-document)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for d in yaml.safe_load_all(path.read_text()):
            assert isinstance(d, dict), f"{path.name}: a document that is not a mapping"
            d["__file__"] = path.name
            docs.append(d)
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def daemonset() -> dict[str, Any]:
    return one("DaemonSet", "pullgate")


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = daemonset()["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    p = pod()
    found = [c for c in p.get("initContainers", []) + p["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def volume(name: str) -> dict[str, Any]:
    found = [v for v in pod()["volumes"] if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def mount_of(c: dict[str, Any], volume_name: str) -> str:
    paths = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == volume_name]
    assert len(paths) == 1, f"{c['name']} mounts {volume_name} {len(paths)} times"
    return paths[0]


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def daemon_config_text() -> str:
    text: str = one("ConfigMap", "pullgate-config")["data"]["pullgate.yaml"]
    return text


def socket_address() -> str:
    listen = yaml.safe_load(daemon_config_text())["listen"]
    assert len(listen) == 1 and listen[0].startswith("unix:///"), listen
    return str(listen[0])


def extract(configmap: dict[str, Any], root: Path) -> Path:
    """The ConfigMap's data as files, as the kubelet projects it (keys are file names)."""
    for key, text in configmap["data"].items():
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key), f"invalid ConfigMap key {key!r}"
        write_files(root, {key: text})
    return root


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "m": 1e-3}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (100m, 1, 192Mi) as a number."""
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|k|M|G|m)?", str(value))
    assert m, f"not a quantity: {value!r}"
    return float(m.group(1)) * _UNITS.get(m.group(2) or "", 1)


# --- every manifest: parse, required fields, kustomization -------------------------------------


def test_every_manifest_has_the_required_fields() -> None:
    docs = manifests()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "ConfigMap", "ConfigMap", "DaemonSet", "Namespace"]
    for d in docs:
        where = f"{d['__file__']}: {d.get('kind')}"
        assert d.get("apiVersion") == ("apps/v1" if d["kind"] == "DaemonSet" else "v1"), where
        name = d["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), where
        if d["kind"] in NAMESPACED:
            assert d["metadata"].get("namespace") == NAMESPACE, where
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "pullgate", where
        if d["kind"] == "ConfigMap":
            assert d["data"] and all(isinstance(v, str) for v in d["data"].values()), where
    assert one("Namespace", NAMESPACE)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_kustomize_builds_the_same_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    r = run(kubectl, "kustomize", str(K8S))
    assert r.returncode == 0, r.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(r.stdout)}
    assert built == {(d["kind"], d["metadata"]["name"]) for d in manifests()}


# --- the DaemonSet -----------------------------------------------------------------------------


def test_selector_matches_the_template_labels() -> None:
    ds = daemonset()
    selector = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= labels.items()


def test_every_container_has_an_image_and_resources_within_limits() -> None:
    p = pod()
    for c in p["initContainers"] + p["containers"]:
        assert c["image"] and c["imagePullPolicy"] == "IfNotPresent", c["name"]
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        assert set(requests) == set(limits) == {"cpu", "memory"}, c["name"]
        for resource in ("cpu", "memory"):
            assert 0 < quantity(requests[resource]) <= quantity(limits[resource]), (
                c["name"],
                resource,
            )
    daemon = container("pullgate")["resources"]
    # Measured: the daemon holds ~95 MB, each exec probe ~66 MB; two probes may overlap.
    assert quantity(daemon["limits"]["memory"]) >= 95 * 2**20 + 2 * 66 * 2**20


def test_one_image_for_the_installer_and_the_daemon_matching_the_dockerfile() -> None:
    images = {c["image"] for c in pod()["initContainers"] + pod()["containers"]}
    assert len(images) == 1
    dockerfile = (K8S / "image" / "Dockerfile").read_text()
    assert f"-t {images.pop()} ." in dockerfile
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert user, "the Dockerfile names a numeric non-root user"
    sc = container("pullgate")["securityContext"]
    assert (int(user.group(1)), int(user.group(2))) == (sc["runAsUser"], sc["runAsGroup"])
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", dockerfile, re.M)
    assert entrypoint, "the Dockerfile has an exec-form ENTRYPOINT"
    entry = json.loads(entrypoint.group(1))
    assert container("pullgate")["command"] == entry
    runtime = env_of(container("install"))["PULLGATE_RUNTIME"]
    assert f"COPY --from=build {runtime} {runtime}" in dockerfile
    assert entry[0].startswith(f"{runtime}/venv/bin/")


def test_the_daemon_runs_unprivileged() -> None:
    assert pod()["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod()["automountServiceAccountToken"] is False
    assert not any(pod().get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    sc = container("pullgate")["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] != 0 and sc["runAsGroup"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Read-only root: the only writable places are the socket directory and /tmp.
    writable = [m for m in container("pullgate")["volumeMounts"] if not m.get("readOnly")]
    assert sorted(m["mountPath"] for m in writable) == ["/run/pullgate", "/tmp"]


def test_the_installer_is_root_with_only_chown() -> None:
    sc = container("install")["securityContext"]
    assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # It writes only into the host directories it installs to.
    writable = {m["name"] for m in container("install")["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"host-opt-pullgate", "host-containerd-conf-d", "host-run-pullgate"}


def test_probes_ask_grpc_health_over_the_socket() -> None:
    c = container("pullgate")
    address = socket_address()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = c[probe]["exec"]["command"]
        assert command[:2] == [c["command"][0], "health"], probe
        assert command[command.index("--address") + 1] == address, probe
        # Alive means answering; ready means SERVING.
        assert ("--live" in command) == (probe != "readinessProbe"), probe
        assert c[probe]["timeoutSeconds"] >= 5, probe  # a probe starts Python: ~0.5-1.5 s here
        assert "grpc" not in c[probe] and "tcpSocket" not in c[probe], probe


# --- cross-references --------------------------------------------------------------------------


def test_every_mount_has_a_volume_and_every_configmap_exists() -> None:
    p = pod()
    names = [v["name"] for v in p["volumes"]]
    assert len(names) == len(set(names))
    used = set()
    for c in p["initContainers"] + p["containers"]:
        for m in c["volumeMounts"]:
            assert m["name"] in names, (c["name"], m["name"])
            used.add(m["name"])
    assert used == set(names), f"unused volumes: {set(names) - used}"
    for v in p["volumes"]:
        if "configMap" in v:
            cm = one("ConfigMap", v["configMap"]["name"])
            for item in v["configMap"].get("items", []):
                assert item["key"] in cm["data"]
        if "secret" in v:  # not shipped: the operator creates it, so it must be optional
            assert v["secret"]["optional"] is True


def test_the_daemon_config_loads_and_names_the_mounted_paths(tmp_path: Path) -> None:
    path = tmp_path / "pullgate.yaml"
    path.write_text(daemon_config_text())
    config = load_config(path)  # pullgate's own validation: unknown keys would fail here
    c = container("pullgate")
    args = c["args"]
    assert args[:2] == ["serve", "--config"]
    config_file = PurePosixPath(args[2])
    assert str(config_file.parent) == mount_of(c, "config")
    assert config_file.name in one("ConfigMap", volume("config")["configMap"]["name"])["data"]
    assert volume("policies")["configMap"]["name"] == "pullgate-policies"
    assert config.policies == mount_of(c, "policies")
    auth = PurePosixPath(config.registry.docker_config)
    assert str(auth.parent) == mount_of(c, "registry-auth")
    assert volume("registry-auth")["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": auth.name}
    ]
    assert config.default_action == "deny"


def test_the_socket_is_one_path_for_daemon_wrapper_probes_and_installer() -> None:
    address = socket_address()
    socket_dir = str(PurePosixPath(address.removeprefix("unix://")).parent)
    host = volume("host-run-pullgate")["hostPath"]
    assert host == {"path": socket_dir, "type": "DirectoryOrCreate"}
    # Same path in the pod as on the node, where containerd's wrapper connects.
    assert mount_of(container("pullgate"), "host-run-pullgate") == socket_dir
    wrapper = one("ConfigMap", "pullgate-node-files")["data"]["pullgate"]
    argv = shlex.split(wrapper.splitlines()[-1])
    assert argv[argv.index("--address") + 1] == address
    install = container("install")
    e = env_of(install)
    assert e["PULLGATE_SOCKET_DIR"] == socket_dir
    assert mount_of(install, "host-run-pullgate") == e["HOST"] + socket_dir


def test_bin_dir_drop_in_and_wrapper_agree_with_samples_containerd() -> None:
    files = one("ConfigMap", "pullgate-node-files")["data"]
    assert files["pullgate"] == (CONTAINERD / "pullgate").read_text()
    assert files["pullgate-verifier.toml"] == (CONTAINERD / "pullgate-verifier.toml").read_text()
    dropin = tomllib.loads(files["pullgate-verifier.toml"])
    bin_dir = dropin["plugins"]["io.containerd.image-verifier.v1.bindir"]["bin_dir"]
    install = container("install")
    e = env_of(install)
    assert e["PULLGATE_BIN_DIR"] == bin_dir
    assert volume("node-files")["configMap"]["name"] == "pullgate-node-files"
    assert container("install")["command"] == [
        "/bin/sh",
        f"{mount_of(install, 'node-files')}/install.sh",
    ]
    assert e["PULLGATE_FILES"] == mount_of(install, "node-files")
    # Each host directory the installer writes is a hostPath mounted at HOST + the same path.
    for variable, name in (
        ("PULLGATE_RUNTIME", "host-opt-pullgate"),
        ("PULLGATE_DROPIN_DIR", "host-containerd-conf-d"),
    ):
        assert volume(name)["hostPath"]["path"] == e[variable]
        assert mount_of(install, name) == e["HOST"] + e[variable]
    # The wrapper and its staging area share one mount, so the rename into bin_dir is atomic.
    assert bin_dir.startswith(e["PULLGATE_RUNTIME"] + "/")
    # The wrapper runs pullgate-containerd from the runtime the installer copies.
    exe = shlex.split(files["pullgate"].splitlines()[-1])[1]
    assert exe == f"{e['PULLGATE_RUNTIME']}/venv/bin/pullgate-containerd"
    assert e["PULLGATE_UID"] == str(container("pullgate")["securityContext"]["runAsUser"])
    assert e["PULLGATE_GID"] == str(container("pullgate")["securityContext"]["runAsGroup"])


# --- the policies ConfigMap --------------------------------------------------------------------


def test_the_policies_configmap_passes_check_and_test(tmp_path: Path) -> None:
    policies = extract(one("ConfigMap", "pullgate-policies"), tmp_path / "policies")
    r = run(str(PULLGATE), "check", str(policies))
    assert r.returncode == 0, r.stderr
    assert "OK: 2 policies" in r.stdout
    r = run(str(PULLGATE), "test", str(policies))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed, 0 failed" in r.stdout


# --- the installer, run for real against a directory standing in for the node -----------------


def _fake_runtime(root: Path, build: str) -> Path:
    write_files(root, {"python/bin/python3": "py", "venv/bin/pullgate-containerd": "pc"})
    (root / "BUILD").write_text(build + "\n")
    return root


def _install(tmp_path: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    files = extract(one("ConfigMap", "pullgate-node-files"), tmp_path / "node-files")
    e = env_of(container("install"))
    env = {
        **e,
        "PATH": os.environ["PATH"],
        "HOST": str(tmp_path / "host"),
        "PULLGATE_FILES": str(files),
        "PULLGATE_RUNTIME": str(runtime),
        # A host path relative to HOST: the image's runtime path, seen under the fake node.
        "PULLGATE_BIN_DIR": str(runtime)
        + e["PULLGATE_BIN_DIR"].removeprefix(e["PULLGATE_RUNTIME"]),
        "PULLGATE_UID": str(os.getuid()),
        "PULLGATE_GID": str(os.getgid()),
    }
    return run("/bin/sh", str(files / "install.sh"), env=env)


def test_the_installer_places_runtime_wrapper_drop_in_and_socket_dir(tmp_path: Path) -> None:
    runtime = _fake_runtime(tmp_path / "image" / "opt" / "pullgate", "build-1")
    r = _install(tmp_path, runtime)
    assert r.returncode == 0, r.stdout + r.stderr
    host = tmp_path / "host"
    node = host / str(runtime).lstrip("/")
    e = env_of(container("install"))
    bin_dir = e["PULLGATE_BIN_DIR"].removeprefix(e["PULLGATE_RUNTIME"]).lstrip("/")
    wrapper = node / bin_dir / "pullgate"
    assert wrapper.read_text() == (CONTAINERD / "pullgate").read_text()
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
    assert sorted(p.name for p in (node / bin_dir).iterdir()) == ["pullgate"]  # nothing else runs
    dropin = host / e["PULLGATE_DROPIN_DIR"].lstrip("/") / "pullgate-verifier.toml"
    assert dropin.read_text() == (CONTAINERD / "pullgate-verifier.toml").read_text()
    assert (node / "venv/bin/pullgate-containerd").read_text() == "pc"
    assert (node / "BUILD").read_text() == "build-1\n"
    assert not (node / ".staging").exists()
    sock = host / e["PULLGATE_SOCKET_DIR"].lstrip("/")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o750
    assert (sock.stat().st_uid, sock.stat().st_gid) == (os.getuid(), os.getgid())
    assert "restart containerd" in r.stdout

    # Again, unchanged: nothing is copied, the drop-in is left alone.
    r = _install(tmp_path, runtime)
    assert r.returncode == 0, r.stderr
    assert "runtime build-1 is already in" in r.stdout and "is up to date" in r.stdout

    # A new image: the runtime is replaced, old files do not linger.
    (runtime / "venv/bin/pullgate-containerd").write_text("pc2")
    (runtime / "BUILD").write_text("build-2\n")
    (node / "venv/bin/stale").write_text("old")
    r = _install(tmp_path, runtime)
    assert r.returncode == 0, r.stderr
    assert (node / "venv/bin/pullgate-containerd").read_text() == "pc2"
    assert not (node / "venv/bin/stale").exists()
    assert "installed runtime build-2" in r.stdout


def test_the_installer_stops_at_the_first_failure(tmp_path: Path) -> None:
    runtime = tmp_path / "image" / "opt" / "pullgate"  # no runtime in the image: nothing to copy
    runtime.mkdir(parents=True)
    (runtime / "BUILD").write_text("b\n")
    r = _install(tmp_path, runtime)
    assert r.returncode != 0
    node = tmp_path / "host" / str(runtime).lstrip("/")
    assert not (node / "verifiers" / "pullgate").exists()  # no wrapper without its runtime


# --- the daemon serving the ConfigMap: probes and the wrapper's call ---------------------------


def health(address: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return run(str(PULLGATE), "health", *flags, "--address", address)


def probe(name: str, address: str) -> subprocess.CompletedProcess[str]:
    """The probe's exec command as the kubelet runs it, with the test daemon's socket."""
    command = list(container("pullgate")[name]["exec"]["command"])
    command[0] = str(PULLGATE)
    command[command.index("--address") + 1] = address
    return run(*command)


def test_probes_and_the_wrapper_against_a_daemon_serving_the_configmap(
    daemons, tmp_path: Path
) -> None:
    policies = extract(one("ConfigMap", "pullgate-policies"), tmp_path / "policies")
    d = daemons(policies)
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        r = probe(name, d.address)
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        assert "SERVING" in r.stdout
    wrapper = shlex.split(
        one("ConfigMap", "pullgate-node-files")["data"]["pullgate"].splitlines()[-1]
    )
    argv = [str(BIN / "pullgate-containerd"), *wrapper[2:]]
    argv[argv.index("--address") + 1] = d.address
    descriptor = json.dumps(
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": DIGEST, "size": 1}
    )
    media = ["-stdin-media-type", "application/vnd.oci.descriptor.v1+json"]

    def pull(ref: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, "-name", ref, "-digest", DIGEST, *media],
            input=descriptor,
            capture_output=True,
            text=True,
            timeout=60,
        )

    allowed = pull("registry.k8s.io/pause:3.10")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    denied = pull("127.0.0.1:9/acme/app:1")  # unsigned (its registry refuses): release-signed
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert 'policy "release-signed": no authority verified' in denied.stdout


def test_health_exit_codes(daemons, tmp_path: Path) -> None:
    policies = write_files(tmp_path / "broken", {"p.yaml": "apiVersion: [\n"})
    missing = f"unix://{tmp_path}/nothing/pullgate.sock"
    r = health(missing)
    assert r.returncode == 2 and "UNAVAILABLE" in r.stderr and r.stdout == ""
    assert health(missing, "--live").returncode == 2  # liveness fails when nobody answers
    assert health("http://x").returncode == 2

    d = daemons(policies, serving=False)  # no policy set has loaded: NOT_SERVING
    r = health(d.address)
    assert r.returncode == 1 and r.stdout.strip().endswith("NOT_SERVING"), r
    r = health(d.address, "--live")
    assert r.returncode == 0 and "NOT_SERVING" in r.stdout, r  # alive, waiting for a fix

    extract(one("ConfigMap", "pullgate-policies"), policies)
    (policies / "p.yaml").unlink()
    deadline = time.monotonic() + 10
    while (r := health(d.address)).returncode != 0:
        assert r.returncode == 1 and time.monotonic() < deadline, (r, d.log.read_text())
    assert r.stdout.strip() == f"{d.address}: pullgate.v1.ImageVerifier: SERVING"
    assert health(d.address, "--service", "").stdout.strip().endswith("(server): SERVING")
    r = health(d.address, "--service", "no.such.Service")
    assert r.returncode == 2 and "NOT_FOUND" in r.stderr

    assert d.stop() == 0
    assert health(d.address).returncode == 2  # the socket is gone with the daemon


# --- samples/gitops: layout, CI commands, deploy ------------------------------------------------


def workflow_commands() -> list[str]:
    workflow = yaml.safe_load((GITOPS / ".github" / "workflows" / "policies.yaml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    return [s["run"] for s in steps if "run" in s and s["run"].startswith("pullgate ")]


def run_ci(repo: Path) -> list[subprocess.CompletedProcess[str]]:
    """The workflow's pullgate steps, in order, stopping at the first failure (as CI does)."""
    env = {**os.environ, "PATH": f"{PULLGATE.parent}{os.pathsep}{os.environ['PATH']}"}
    results = []
    for command in workflow_commands():
        results.append(r := run(*shlex.split(command), cwd=repo, env=env))
        if r.returncode != 0:
            break
    return results


def test_the_ci_job_runs_check_and_test_and_passes_on_the_sample() -> None:
    assert workflow_commands() == ["pullgate check policies", "pullgate test tests"]
    check, test = run_ci(GITOPS)
    assert check.returncode == 0, check.stderr
    assert "OK: 3 policies" in check.stdout
    assert test.returncode == 0, test.stdout + test.stderr
    assert "6 passed, 0 failed" in test.stdout


def test_a_broken_policy_turns_ci_red(tmp_path: Path) -> None:
    repo = shutil.copytree(GITOPS, tmp_path / "repo")
    policy = repo / "policies" / "production.yaml"
    policy.write_text(
        policy.read_text().replace('authorities["github-release"]', 'authorities["github-relase"]')
    )
    results = run_ci(repo)
    assert len(results) == 1  # check failed, so the tests did not run
    assert results[0].returncode == 1
    assert "production.yaml:" in results[0].stderr and "github-relase" in results[0].stderr


def test_a_policy_change_that_breaks_a_test_case_turns_ci_red(tmp_path: Path) -> None:
    repo = shutil.copytree(GITOPS, tmp_path / "repo")
    policy = repo / "policies" / "production.yaml"
    policy.write_text(policy.read_text().replace('["prod-*"]', '["prod-us-*"]'))  # compiles
    check, test = run_ci(repo)
    assert check.returncode == 0, check.stderr
    assert test.returncode == 1
    assert "FAIL production / a prod image with only the release key is denied" in test.stdout


def test_gitops_deploys_every_policy_file_into_the_configmap_the_daemonset_mounts() -> None:
    kustomization = yaml.safe_load((GITOPS / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == volume("policies")["configMap"]["name"]
    on_disk = sorted(f"policies/{p.name}" for p in (GITOPS / "policies").iterdir())
    assert sorted(generator["files"]) == on_disk  # a new file in policies/ is deployed too
    assert not list((GITOPS / "policies").glob("*/"))  # a ConfigMap has no subdirectories


def test_gitops_kustomize_output_passes_check(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    r = run(kubectl, "kustomize", str(GITOPS))
    assert r.returncode == 0, r.stderr
    (cm,) = list(yaml.safe_load_all(r.stdout))
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "pullgate-policies")
    assert cm["metadata"]["namespace"] == NAMESPACE
    r = run(str(PULLGATE), "check", str(extract(cm, tmp_path / "deployed")))
    assert r.returncode == 0, r.stderr
    assert "OK: 3 policies" in r.stdout
