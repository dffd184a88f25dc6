"""Model access: OpenAI-compatible clients, the scripted stand-in, the local llama.cpp server, and
choosing one."""
