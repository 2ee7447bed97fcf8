"""The committed gRPC stubs are exactly what `make proto` generates from the .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

GENERATED = ("verifier_pb2.py", "verifier_pb2.pyi", "verifier_pb2_grpc.py")


def test_stubs_are_not_stale(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(REPO / "proto/pullgate/v1/verifier.proto"),
        ],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "pullgate/v1" / name).read_text()
        committed = (REPO / "engine/pullgate/v1" / name).read_text()
        assert committed == fresh, f"engine/pullgate/v1/{name} is stale: run `make proto`"


def test_the_service_is_the_contract() -> None:
    from pullgate.v1 import verifier_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["ImageVerifier"]
    assert service.full_name == "pullgate.v1.ImageVerifier"
    assert service.methods_by_name["Verify"].input_type.name == "VerifyRequest"
    fields = {f.name: f.number for f in pb.VerifyResponse.DESCRIPTOR.fields}
    assert fields == {
        "ok": 1,
        "reason": 2,
        "decision_id": 3,
        "policy_revision": 4,
        "policies": 5,
        "warnings": 6,
        "cached": 7,
        "code": 8,
    }
    request = {f.name: f.number for f in pb.VerifyRequest.DESCRIPTOR.fields}
    assert request == {
        "image_name": 1,
        "descriptor": 2,
        "operation": 3,
        "namespace": 4,
        "annotations": 5,
        "labels": 6,
        "pod_name": 7,
        "pod_uid": 8,
    }
