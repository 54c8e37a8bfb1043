#!/usr/bin/env bash
# The wheels bench/gpu_check.sh installs on a lent GPU host: what regsweep needs there beyond the host's own
# packages (PyTorch, pandas, pyarrow, scikit-learn, rich, ...), for its Python 3.12, in .whl/ (git ignores it).
#
#   bash bench/gpu_wheels.sh        # then carry .whl to the host; gpu_check.sh installs it first
#
# Each package is pinned to the version installed here, so the host runs what the tests ran. Ray's wheel loses
# its Java jar, dashboard build, RLlib, Serve and LLM packages (none of which a sweep imports), and MLflow comes
# as mlflow-skinny and mlflow-tracing without the server's UI: together about 66 MB, inside the 64 MiB that
# travels to the host (session 15).
set -eu
PY=${PYTHON:-python3}
DEST=${1:-.whl}
PACKAGES="alembic annotated-types cachetools cffi colorlog cryptography databricks-sdk fastapi gitdb gitpython
  google-auth importlib-metadata jsonschema jsonschema-specifications mako mlflow-skinny mlflow-tracing mlxtend
  opentelemetry-api opentelemetry-proto opentelemetry-sdk opentelemetry-semantic-conventions optuna pyasn1
  pyasn1-modules pycparser pydantic pydantic-core python-dotenv ray referencing rpds-py smmap sqlalchemy sqlparse
  starlette tensorboardx typing-inspection uvicorn"
pins=$($PY - $PACKAGES <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
EOF
)
rm -rf "$DEST" && mkdir -p "$DEST"
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" $pins
$PY - "$DEST" <<'EOF'
import sys, zipfile
from pathlib import Path

DROP = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/serve/", "ray/llm/", "ray/cpp/")
wheel = next(Path(sys.argv[1]).glob("ray-*.whl"))
stripped = wheel.with_suffix(".tmp")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
    for item in source.infolist():
        if item.filename.startswith(DROP):
            continue
        data = source.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"\n".join(line for line in data.split(b"\n") if not line.decode().startswith(DROP))
        out.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
stripped.replace(wheel)
EOF
du -cb "$DEST"/*.whl | tail -1 | awk '{printf "%.1f MB of wheels in %s\n", $1 / 1e6, "'"$DEST"'"}'
