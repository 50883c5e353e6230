#!/usr/bin/env bash
# Regenerates the Python stubs of protos/ into the folder given (default: clients/), and a descriptor
# set with the proto comments, which server reflection serves so `grpcurl describe` shows them.
# Used by `make proto` and by the staleness test, so both produce byte-identical output.
set -euo pipefail
out=${1:-clients}
py=${PYTHON:-python}
# protoc finds the mypy plugins on PATH, next to the interpreter that runs it.
export PATH="$(dirname "$py"):$PATH"
mkdir -p "$out/messagelog/v1"
"$py" -m grpc_tools.protoc -I protos \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  --include_source_info --include_imports --descriptor_set_out="$out/messagelog/v1/descriptor_set.binpb" \
  protos/messagelog/v1/*.proto
