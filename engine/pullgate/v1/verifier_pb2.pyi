from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Descriptor(_message.Message):
    __slots__ = ("media_type", "digest", "size", "annotations", "artifact_type")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    digest: str
    size: int
    annotations: _containers.ScalarMap[str, str]
    artifact_type: str
    def __init__(self, media_type: _Optional[str] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., annotations: _Optional[_Mapping[str, str]] = ..., artifact_type: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("image_name", "descriptor", "operation", "namespace", "annotations", "labels", "pod_name", "pod_uid")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    image_name: str
    descriptor: Descriptor
    operation: str
    namespace: str
    annotations: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    pod_name: str
    pod_uid: str
    def __init__(self, image_name: _Optional[str] = ..., descriptor: _Optional[_Union[Descriptor, _Mapping]] = ..., operation: _Optional[str] = ..., namespace: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., pod_name: _Optional[str] = ..., pod_uid: _Optional[str] = ...) -> None: ...

class RuleResult(_message.Message):
    __slots__ = ("name", "passed", "message", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    message: str
    error: str
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., message: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class AuthorityResult(_message.Message):
    __slots__ = ("name", "verified", "signatures", "error", "cached")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    name: str
    verified: bool
    signatures: int
    error: str
    cached: bool
    def __init__(self, name: _Optional[str] = ..., verified: _Optional[bool] = ..., signatures: _Optional[int] = ..., error: _Optional[str] = ..., cached: _Optional[bool] = ...) -> None: ...

class PolicyResult(_message.Message):
    __slots__ = ("name", "mode", "passed", "authorities", "rules")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    AUTHORITIES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: str
    passed: bool
    authorities: _containers.RepeatedCompositeFieldContainer[AuthorityResult]
    rules: _containers.RepeatedCompositeFieldContainer[RuleResult]
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[str] = ..., passed: _Optional[bool] = ..., authorities: _Optional[_Iterable[_Union[AuthorityResult, _Mapping]]] = ..., rules: _Optional[_Iterable[_Union[RuleResult, _Mapping]]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("ok", "reason", "decision_id", "policy_revision", "policies", "warnings", "cached", "code")
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    reason: str
    decision_id: str
    policy_revision: str
    policies: _containers.RepeatedCompositeFieldContainer[PolicyResult]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    cached: bool
    code: str
    def __init__(self, ok: _Optional[bool] = ..., reason: _Optional[str] = ..., decision_id: _Optional[str] = ..., policy_revision: _Optional[str] = ..., policies: _Optional[_Iterable[_Union[PolicyResult, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., cached: _Optional[bool] = ..., code: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("policy_revision", "policy_dir", "policies", "loaded_at", "load_errors", "failed_at", "shadow_dir", "shadow_revision", "shadow_policies", "shadow_load_errors", "shadow_evaluations", "shadow_would_deny", "shadow_would_allow", "shadow_errors", "shadow_dropped")
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIR_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LOAD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DIR_FIELD_NUMBER: _ClassVar[int]
    SHADOW_REVISION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_POLICIES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_LOAD_ERRORS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WOULD_DENY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_WOULD_ALLOW_FIELD_NUMBER: _ClassVar[int]
    SHADOW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DROPPED_FIELD_NUMBER: _ClassVar[int]
    policy_revision: str
    policy_dir: str
    policies: int
    loaded_at: str
    load_errors: _containers.RepeatedScalarFieldContainer[str]
    failed_at: str
    shadow_dir: str
    shadow_revision: str
    shadow_policies: int
    shadow_load_errors: _containers.RepeatedScalarFieldContainer[str]
    shadow_evaluations: int
    shadow_would_deny: int
    shadow_would_allow: int
    shadow_errors: int
    shadow_dropped: int
    def __init__(self, policy_revision: _Optional[str] = ..., policy_dir: _Optional[str] = ..., policies: _Optional[int] = ..., loaded_at: _Optional[str] = ..., load_errors: _Optional[_Iterable[str]] = ..., failed_at: _Optional[str] = ..., shadow_dir: _Optional[str] = ..., shadow_revision: _Optional[str] = ..., shadow_policies: _Optional[int] = ..., shadow_load_errors: _Optional[_Iterable[str]] = ..., shadow_evaluations: _Optional[int] = ..., shadow_would_deny: _Optional[int] = ..., shadow_would_allow: _Optional[int] = ..., shadow_errors: _Optional[int] = ..., shadow_dropped: _Optional[int] = ...) -> None: ...
