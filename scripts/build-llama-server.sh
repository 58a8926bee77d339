#!/usr/bin/env bash
# Build llama.cpp's llama-server, llama-bench and llama-quantize from the source that the
# llama-cpp-python sdist vendors (a package registry is the only place we may fetch from).
#
# The build is cached per llama.cpp source version under $THRIFTY_BUILD_CACHE
# (default ~/.cache/thrifty), so a fresh clone on the same machine builds nothing twice.
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${THRIFTY_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thrifty}"
root="$cache/llama.cpp-$version"
bin="$root/bin"
python="${PYTHON:-python3}"

if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] \
  && [ -x "$bin/llama-batched-bench" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$root"
if [ ! -d "$root/src" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching llama-cpp-python==$version source (for its vendored llama.cpp)" >&2
  "$python" -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$version" >&2
  tar -xzf "$tmp"/llama_cpp_python-"$version".tar.gz -C "$tmp"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp" "$root/src"
fi

# AMX: some VMs advertise AMX but fault on it (SIGSEGV/SIGILL on the first quantized matmul).
# The models we serve are tiny, so AMX buys nothing: compile it out everywhere.
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if ! echo 'int main(){return 0;}' | cc $no_amx -x c - -o /dev/null 2>/dev/null; then
  no_amx=""   # compiler too old to know AMX: it cannot emit it either
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
jobs="${JOBS:-$(nproc)}"
echo "building llama.cpp tools in $root (jobs=$jobs; takes a few minutes once)" >&2
cmake -S "$root/src" -B "$root/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DCMAKE_C_FLAGS="$no_amx" \
  -DCMAKE_CXX_FLAGS="$no_amx" >&2
cmake --build "$root/build" --config Release -j "$jobs" \
  --target llama-server llama-bench llama-quantize llama-batched-bench >&2
mkdir -p "$bin"
for tool in llama-server llama-bench llama-quantize llama-batched-bench; do
  cp "$root/build/bin/$tool" "$bin/$tool"
done
echo "$bin"
