"""``python -m logact.agent.models.llama_server ARGS``: ``python -m llama_cpp.server ARGS``, with
the llama.cpp CPU backend that fits this machine loaded first.

``scripts/llama-build.cmake`` builds that backend once per x86-64 level (SSE4.2 ... AVX-512), as
modules beside libllama, so one build runs on any CPU. ggml picks the best module a CPU supports,
but looks for them only beside the executable (Python's ``bin/``) and in the working directory:
this points it at where they are. A build with the backend linked in (no modules) already has it
registered and is left alone.
"""

from __future__ import annotations

import ctypes
import importlib.util
import runpy
import sys
from pathlib import Path


def load_cpu_backend() -> None:
    """Register ggml's backends from llama_cpp's ``lib/`` unless one is registered already; exit
    with a one-line error if none loads (no module fits this CPU)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: llama-cpp-python is not installed")
    lib = Path(spec.submodule_search_locations[0]) / "lib"
    ggml = ctypes.CDLL(str(lib / "libggml.so"))  # the one libllama links: same soname
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    if ggml.ggml_backend_reg_count() == 0:
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(str(lib).encode())
    if ggml.ggml_backend_reg_count() == 0:
        sys.exit(f"error: no llama.cpp CPU backend in {lib} loads on this CPU")


def main() -> None:
    load_cpu_backend()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
