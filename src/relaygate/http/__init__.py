"""The HTTP shell's parts that know nothing of LLMs: the route table (and, as the shell is redesigned, the
ASGI message types and the IO helpers)."""
