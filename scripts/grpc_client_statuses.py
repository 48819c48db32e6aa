"""A gRPC client in another language (Python, grpcio) against a tower-bearer server.

Usage: python grpc_client_statuses.py HOST:PORT CASES_JSON

CASES_JSON is a list of {"method": "/pkg.Service/Method", "token": str or null}. The
script calls each method with an empty request message (no generated stubs needed) and
prints one JSON line per case: {"code": "UNAUTHENTICATED", "details": "..."}.
The Rust test `tests/grpc.rs` runs it and compares with what tonic saw.
"""

import json
import sys

import grpc


def main() -> None:
    address, cases = sys.argv[1], json.loads(sys.argv[2])
    with grpc.insecure_channel(address) as channel:
        for case in cases:
            call = channel.unary_unary(
                case["method"],
                request_serializer=lambda message: message,
                response_deserializer=lambda message: message,
            )
            metadata = []
            if case["token"] is not None:
                metadata.append(("authorization", "Bearer " + case["token"]))
            try:
                call(b"", metadata=metadata, timeout=10)
                print(json.dumps({"code": "OK", "details": ""}))
            except grpc.RpcError as error:
                print(json.dumps({"code": error.code().name, "details": error.details() or ""}))


if __name__ == "__main__":
    main()
