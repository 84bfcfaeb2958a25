"""Catalog ``kind`` -> adapter class. A new provider is one module and one line here.

Classes are named by import path and imported on first use, so that a catalog without
an ``openai`` provider never pays for importing the openai SDK.
"""

from __future__ import annotations

import importlib

from providers.base import Provider, ProviderConfig

KINDS: dict[str, str] = {
    "openai": "providers.openai:OpenAIProvider",
    "mistral": "providers.mistral:MistralProvider",
    "llama": "providers.llama:LlamaProvider",
    "ollama": "providers.ollama:OllamaProvider",
    "gemini": "providers.gemini:GeminiProvider",
}


def provider_class(kind: str) -> type[Provider]:
    try:
        target = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r} (known: {', '.join(KINDS)})") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def needs_key(kind: str) -> bool:
    return provider_class(kind).needs_key


def create(config: ProviderConfig) -> Provider:
    return provider_class(config.kind)(config)
