"""Whether a model has Llama's shape: the check both the Llama and the GGUF export make."""

from __future__ import annotations

# project field, config attribute, the values Llama has
LLAMA_PARTS = (
    ("positional_encoding", "positional_encoding", ("rope", "yarn")),
    ("normalization", "normalization", ("rmsnorm",)),
    ("activation", "hidden_act", ("swiglu",)),
)


def llama_problems(config) -> list[str]:
    """One line per part of `config` that has no Llama equivalent; empty when it is Llama-shaped."""
    if getattr(config, "model_type", None) != "llmlab":
        return [f"model: {getattr(config, 'model_type', '?')} is not an LLM-Lab model"]
    return [
        f"{field}: {getattr(config, attribute)} has no Llama equivalent (needs {' or '.join(allowed)})"
        for field, attribute, allowed in LLAMA_PARTS
        if getattr(config, attribute) not in allowed
    ]
