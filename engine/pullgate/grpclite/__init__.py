"""A minimal gRPC client (HTTP/2, HPACK, two protobuf messages) for pullgate-containerd's one
call per process. Standard library only; anything unexpected makes it step aside for grpcio."""
