# How scripts/_env.sh builds llama-cpp-python (the `llm` extra). Passed as CMAKE_PROJECT_INCLUDE,
# so it runs after every project() of that build and these settings win over its defaults.
# Its content is part of the key of the cached wheel: change it and the wheel is rebuilt.

# Portable: never -march=native (a wheel built on one CPU crashed with SIGSEGV on another). The CPU
# backend is built once per x86-64 level (SSE4.2 ... AVX-512, AMX), each as a loadable module, and
# the server loads the best one this CPU supports when it starts (agent/models/llama_server.py).
set(GGML_NATIVE OFF CACHE BOOL "" FORCE)
set(GGML_BACKEND_DL ON CACHE BOOL "" FORCE)
set(GGML_CPU_ALL_VARIANTS ON CACHE BOOL "" FORCE)
# Install those modules next to libllama (the default, bin/, lands at the top of site-packages);
# they find libggml-base beside them.
set(CMAKE_INSTALL_BINDIR "llama_cpp/lib" CACHE PATH "" FORCE)
set(CMAKE_INSTALL_RPATH "$ORIGIN" CACHE STRING "" FORCE)

# Build only what the Python bindings load (libllama, libggml*): no multimodal library (mtmd) and
# no llama.cpp "common" library, which llama-cpp-python forces on but never loads.
set(LLAVA_BUILD OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)
