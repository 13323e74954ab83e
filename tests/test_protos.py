"""The protos are the API contract: package serendip.v1, and every element documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parents[1] / "protos"
PROTO_FILES = sorted(PROTO_ROOT.glob("serendip/v1/*.proto"))


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    output = tmp_path_factory.mktemp("protos") / "serendip.pb"
    args = ["protoc", f"-I{PROTO_ROOT}", "--include_source_info", f"--descriptor_set_out={output}"]
    assert protoc.main(args + [str(p.relative_to(PROTO_ROOT)) for p in PROTO_FILES]) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


def _undocumented(proto: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Paths of messages, fields, enums, values, services and methods without a leading comment."""
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in proto.source_code_info.location}
    missing = []

    def check(path: tuple[int, ...], name: str) -> None:
        if not comments.get(path):
            missing.append(f"{proto.name}: {name}")

    for m_index, message in enumerate(proto.message_type):
        # Messages may be documented by their fields alone when their name says it all (requests).
        for f_index, field in enumerate(message.field):
            check((4, m_index, 2, f_index), f"{message.name}.{field.name}")
    for e_index, enum in enumerate(proto.enum_type):
        check((5, e_index), enum.name)
        for v_index, value in enumerate(enum.value):
            check((5, e_index, 2, v_index), f"{enum.name}.{value.name}")
    for s_index, service in enumerate(proto.service):
        check((6, s_index), service.name)
        for r_index, method in enumerate(service.method):
            check((6, s_index, 2, r_index), f"{service.name}.{method.name}")
    return missing


def test_all_protos_are_versioned_serendip_v1(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    assert {f.name for f in descriptor_set.file} == {
        "serendip/v1/common.proto",
        "serendip/v1/planner.proto",
        "serendip/v1/retriever.proto",
    }
    assert {f.package for f in descriptor_set.file} == {"serendip.v1"}


def test_every_field_enum_and_method_is_documented(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    missing = [entry for proto in descriptor_set.file for entry in _undocumented(proto)]
    assert missing == []


def test_services_expose_the_contracted_methods(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    methods = {
        f"{service.name}.{method.name}"
        for proto in descriptor_set.file
        for service in proto.service
        for method in service.method
    }
    assert methods == {"Planner.Plan", "Planner.Recommend", "Retriever.Retrieve"}
