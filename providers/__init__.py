"""Model API adapters behind one interface. No Telegram, Redis or bot settings here."""

from providers.base import (
    ChatRequest,
    Chunk,
    Completion,
    Image,
    Message,
    Provider,
    ProviderConfig,
    Usage,
)
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    DeclinedError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    UnreachableError,
    UnsupportedError,
)

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChatRequest",
    "Chunk",
    "Completion",
    "ContextTooLongError",
    "DeclinedError",
    "Image",
    "Message",
    "ModelNotFoundError",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "UnavailableError",
    "UnreachableError",
    "UnsupportedError",
    "Usage",
]
