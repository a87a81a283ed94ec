#!/usr/bin/env bash
# Runs every Python test (bindings/python/tests and bindings/slicer/tests); works from any
# directory on a machine with Rust, a C compiler and Python 3 with pip.
#
#  1. Builds the library with `cargo build --lib` (a no-op when it is up to date) and points
#     NNUNET_RT_LIB at it; set NNUNET_RT_LIB yourself to test another build and skip this step.
#  2. Fetches ONNX Runtime into .ort/ with `cargo xtask ort` when neither NNUNET_RT_ORT_LIB
#     nor ORT_DYLIB_PATH is set and no fetched copy exists.
#  3. Creates target/py-venv with numpy and pytest the first time.
#  4. Runs pytest; extra arguments go to pytest. The exit code is pytest's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$(uname -s)" in
  Darwin) lib_name=libnnunet_rt.dylib ;;
  MINGW*|MSYS*|CYGWIN*) lib_name=nnunet_rt.dll ;;
  *) lib_name=libnnunet_rt.so ;;
esac

if [ -z "${NNUNET_RT_LIB:-}" ]; then
  echo "run_tests: cargo build --lib" >&2
  (cd "$root" && cargo build --lib --quiet)
  export NNUNET_RT_LIB="$target_dir/debug/$lib_name"
fi
if [ ! -f "$NNUNET_RT_LIB" ]; then
  echo "run_tests: NNUNET_RT_LIB=$NNUNET_RT_LIB does not exist" >&2
  exit 2
fi

if [ -z "${NNUNET_RT_ORT_LIB:-}" ] && [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ort_lib="$root/.ort/lib/libonnxruntime.so"
  if [ ! -f "$ort_lib" ]; then
    echo "run_tests: fetching ONNX Runtime (cargo xtask ort)" >&2
    ort_lib="$(cd "$root" && cargo xtask ort | tail -n 1)"
  fi
  export NNUNET_RT_ORT_LIB="$ort_lib"
fi

venv="$root/target/py-venv"
if ! "$venv/bin/python" -c "import numpy, pytest" >/dev/null 2>&1; then
  echo "run_tests: creating $venv with numpy and pytest" >&2
  rm -rf "$venv"
  if "$python" -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/pip" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy pytest
  else
    # No ensurepip (e.g. Debian without python3-venv): a bare venv filled by the outer pip.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check numpy pytest
  fi
fi

cd "$root"
exec "$venv/bin/python" -m pytest -p no:cacheprovider -W error::pytest.PytestUnraisableExceptionWarning \
  bindings/python/tests bindings/slicer/tests "$@"
