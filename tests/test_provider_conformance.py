"""What every provider kind must do alike, run against each kind's loopback double of its
real API: streaming, usage, retries before the first chunk only, every error class,
timeouts, cut and broken streams, and nothing but ``ProviderError`` escaping.

The per-kind files (tests/test_provider_<kind>.py) keep what is each API's own: the
request on the wire, its quirks and error bodies.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from providers import registry
from providers.base import ChatRequest, Chunk, Message, Provider, ProviderConfig, Usage
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from tests.doubles.base import LLMDouble, Reply
from tests.doubles.gemini_api import GeminiDouble
from tests.doubles.llama_api import LlamaDouble
from tests.doubles.mistral_api import MistralDouble
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble

KEY = "test-key"


@dataclass(frozen=True)
class Kind:
    name: str
    double: type[LLMDouble]
    suffix: str  # what follows the double's URL in the provider's base_url
    model: str
    needs_key: bool = True
    error_events: bool = True  # the API can report a failure inside a 200 stream


KINDS = [
    Kind("openai", OpenAIDouble, "/v1", "gpt-5-mini"),
    Kind("mistral", MistralDouble, "/v1", "mistral-small-latest"),
    Kind("llama", LlamaDouble, "/v1", "Llama-3.3-70B-Instruct", error_events=False),
    Kind("ollama", OllamaDouble, "", "llama3.2", needs_key=False),
    Kind("gemini", GeminiDouble, "/v1beta", "gemini-2.5-flash"),
]


@dataclass
class Setup:
    kind: Kind
    double: LLMDouble
    make: Callable[..., Provider]

    @property
    def base_url(self) -> str:
        return self.double.url + self.kind.suffix

    def ask(self, text: str = "hello there world", **options: Any) -> ChatRequest:
        return ChatRequest(
            model=options.pop("model", self.kind.model),
            messages=[Message("system", "Be brief."), Message("user", text)],
            **options,
        )

    def posts(self) -> int:
        """Chat calls the double received (not model listings)."""
        return sum(1 for r in self.double.requests if r.method == "POST")


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    kind: Kind = request.param
    made: list[Provider] = []
    async with kind.double(key=KEY) as double:

        def make(**overrides: Any) -> Provider:
            settings: dict[str, Any] = {
                "name": kind.name,
                "kind": kind.name,
                "base_url": double.url + kind.suffix,
                "api_key": KEY,
                "timeout": 2.0,
                "max_retries": 2,
                "backoff": 0.01,
            }
            settings.update(overrides)
            provider = registry.create(ProviderConfig(**settings))
            made.append(provider)
            return provider

        try:
            yield Setup(kind, double, make)
        finally:
            for provider in made:
                await provider.aclose()


async def collect(provider: Provider, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def until_error(
    provider: Provider, request: ChatRequest
) -> tuple[list[Chunk], BaseException]:
    """The chunks that came before the stream failed, and what it failed with."""
    chunks: list[Chunk] = []
    try:
        async for chunk in provider.stream(request):
            chunks.append(chunk)
    except BaseException as exc:  # the test looks at whatever escaped
        return chunks, exc
    raise AssertionError(f"the stream did not fail; got {chunks!r}")


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks if c.text]


# -- the answer --------------------------------------------------------------------------


async def test_the_registry_builds_the_kind(setup: Setup) -> None:
    provider = setup.make()
    assert provider.kind == setup.kind.name
    assert registry.needs_key(setup.kind.name) is setup.kind.needs_key


async def test_text_streams_complete_and_in_order(setup: Setup) -> None:
    chunks = await collect(setup.make(), setup.ask("one two three four five"))
    pieces = texts(chunks)
    assert len(pieces) > 1
    assert "".join(pieces) == "echo: one two three four five"
    assert all(c.reasoning == "" for c in chunks)


async def test_explicit_pieces_arrive_as_sent(setup: Setup) -> None:
    pieces = ["Привет", ", ", "мир", " 🌍", "\n\n", "**bold**"]
    setup.double.default = Reply(chunks=pieces)
    assert texts(await collect(setup.make(), setup.ask())) == pieces


async def test_finish_reason_and_usage(setup: Setup) -> None:
    setup.double.default = Reply(text="The answer is 42.", usage=(21, 3))
    result = await setup.make().complete(setup.ask())
    assert result.text == "The answer is 42."
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=21, output_tokens=3)


async def test_no_usage_reported_is_none(setup: Setup) -> None:
    setup.double.default = Reply(text="a b", usage=None)
    result = await setup.make().complete(setup.ask())
    assert (result.text, result.usage, result.finish_reason) == ("a b", None, "stop")


async def test_list_models(setup: Setup) -> None:
    setup.double.known_models = {setup.kind.model, "another-model"}
    assert sorted(await setup.make().list_models()) == sorted(setup.double.known_models)


async def test_an_abandoned_stream_leaves_the_provider_usable(setup: Setup) -> None:
    provider = setup.make()
    setup.double.default = Reply(text="a b c d e f g h", chunk_delay=0.01)
    stream = provider.stream(setup.ask())
    first = await anext(stream)
    while not first.text:
        first = await anext(stream)
    assert first.text == "a"
    await stream.aclose()  # what /stop does
    assert (await provider.complete(setup.ask())).text == "a b c d e f g h"


# -- errors that are not retried -----------------------------------------------------------


async def test_a_wrong_key_is_an_authentication_error(setup: Setup) -> None:
    secret = "sk-wrong-but-secret"
    _, error = await until_error(setup.make(api_key=secret), setup.ask())
    assert isinstance(error, AuthenticationError), repr(error)
    assert secret not in str(error)
    assert setup.posts() == 1
    with pytest.raises(AuthenticationError):
        await setup.make(api_key=secret).list_models()


async def test_an_unknown_model_is_model_not_found(setup: Setup) -> None:
    setup.double.known_models = {setup.kind.model}
    _, error = await until_error(setup.make(), setup.ask(model="no-such-model"))
    assert isinstance(error, ModelNotFoundError), repr(error)
    assert "no-such-model" in str(error)
    assert setup.posts() == 1


async def test_a_bad_request_is_not_retried(setup: Setup) -> None:
    setup.double.default = Reply(status=400, error="Unsupported value: 'temperature'")
    _, error = await until_error(setup.make(), setup.ask(temperature=3.0))
    assert type(error) is BadRequestError, repr(error)
    assert "temperature" in str(error)
    assert setup.posts() == 1


async def test_input_over_the_context_is_context_too_long(setup: Setup) -> None:
    words = "This model's maximum context length is 1000 tokens: the input is too long."
    setup.double.default = Reply(status=400, error=words)
    _, error = await until_error(setup.make(), setup.ask())
    assert isinstance(error, ContextTooLongError), repr(error)
    assert setup.posts() == 1


# -- retries before the first chunk ----------------------------------------------------------


async def test_429_waits_the_servers_delay_then_succeeds(setup: Setup) -> None:
    setup.double.queue.append(Reply(status=429, retry_after=0.3, error="slow down"))
    result = await setup.make().complete(setup.ask("again"))
    assert result.text == "echo: again"
    first, second = [r for r in setup.double.requests if r.method == "POST"]
    assert second.time - first.time >= 0.3 - 0.005  # a timer may wake a tick early


async def test_429_asking_too_long_a_wait_is_not_retried(setup: Setup) -> None:
    setup.double.default = Reply(status=429, retry_after=30, error="slow down")
    started = time.monotonic()
    _, error = await until_error(setup.make(max_retry_wait=10.0), setup.ask())
    assert isinstance(error, RateLimitedError) and error.retry_after == 30
    assert setup.posts() == 1
    assert time.monotonic() - started < 5


async def test_429_without_a_wait_backs_off_then_gives_up(setup: Setup) -> None:
    setup.double.default = Reply(status=429, error="slow down")
    _, error = await until_error(setup.make(max_retries=2), setup.ask())
    assert isinstance(error, RateLimitedError) and error.retry_after is None
    assert setup.posts() == 3


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried_then_unavailable(setup: Setup, status: int) -> None:
    setup.double.default = Reply(status=status)
    _, error = await until_error(setup.make(max_retries=2), setup.ask())
    assert isinstance(error, UnavailableError), repr(error)
    assert error.status == status
    assert setup.posts() == 3


async def test_server_errors_then_success(setup: Setup) -> None:
    setup.double.queue.extend([Reply(status=503), Reply(status=500)])
    result = await setup.make(max_retries=2).complete(setup.ask("ok"))
    assert result.text == "echo: ok"
    assert setup.posts() == 3


async def test_a_cut_before_any_text_is_retried(setup: Setup) -> None:
    setup.double.queue.append(Reply(chunks=["x", "y"], cut_after=0))
    result = await setup.make().complete(setup.ask("then fine"))
    assert result.text == "echo: then fine"
    assert setup.posts() == 2


async def test_connection_refused_is_unavailable(setup: Setup) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = setup.make(base_url=f"http://127.0.0.1:{port}{setup.kind.suffix}", max_retries=1)
    _, error = await until_error(provider, setup.ask())
    assert isinstance(error, UnavailableError), repr(error)
    with pytest.raises(UnavailableError):
        await provider.list_models()


# -- timeouts, cuts, garbage: never retried once text has come -------------------------------


async def test_a_hang_is_a_timeout(setup: Setup) -> None:
    setup.double.default = Reply(hang=True)
    started = time.monotonic()
    _, error = await until_error(setup.make(timeout=0.3), setup.ask())
    assert isinstance(error, ProviderTimeoutError), repr(error)
    assert time.monotonic() - started < 3
    assert setup.posts() == 1


async def test_a_stall_mid_stream_is_a_timeout_after_the_text(setup: Setup) -> None:
    setup.double.default = Reply(chunks=["a", "b", "c"], chunk_delay=2.0)
    chunks, error = await until_error(setup.make(timeout=0.6), setup.ask())
    assert isinstance(error, ProviderTimeoutError), repr(error)
    assert texts(chunks) == ["a"]
    assert setup.posts() == 1


async def test_a_cut_after_text_keeps_it_and_is_not_retried(setup: Setup) -> None:
    setup.double.default = Reply(chunks=["one", " two", " three", " four"], cut_after=2)
    chunks, error = await until_error(setup.make(), setup.ask())
    assert isinstance(error, UnavailableError), repr(error)
    assert texts(chunks) == ["one", " two"]
    assert setup.posts() == 1


async def test_an_error_in_the_stream_after_text_is_not_retried(setup: Setup) -> None:
    if not setup.kind.error_events:
        pytest.skip(f"{setup.kind.name}'s API has no in-stream errors")
    setup.double.default = Reply(chunks=["one", " two", " three"], error_after=2, error="overload")
    chunks, error = await until_error(setup.make(), setup.ask())
    assert isinstance(error, UnavailableError), repr(error)
    assert texts(chunks) == ["one", " two"]
    assert setup.posts() == 1


async def test_a_malformed_stream_is_unavailable(setup: Setup) -> None:
    setup.double.default = Reply(malformed=True)
    _, error = await until_error(setup.make(max_retries=1), setup.ask())
    assert isinstance(error, UnavailableError), repr(error)
    assert setup.posts() == 2  # retried once: nothing had reached the user


# -- nothing but ProviderError escapes ---------------------------------------------------------

SCENARIOS: dict[str, Callable[[LLMDouble], None]] = {
    "wrong key": lambda d: setattr(d, "key", "another-key"),
    "unknown model": lambda d: setattr(d, "known_models", {"other"}),
    "400": lambda d: setattr(d, "default", Reply(status=400)),
    "422": lambda d: setattr(d, "default", Reply(status=422)),
    "429": lambda d: setattr(d, "default", Reply(status=429, retry_after=60)),
    "500": lambda d: setattr(d, "default", Reply(status=500)),
    "503": lambda d: setattr(d, "default", Reply(status=503)),
    "hang": lambda d: setattr(d, "default", Reply(hang=True)),
    "stall": lambda d: setattr(d, "default", Reply(chunks=["a", "b"], chunk_delay=1.0)),
    "cut": lambda d: setattr(d, "default", Reply(chunks=["a", "b", "c"], cut_after=1)),
    "cut at once": lambda d: setattr(d, "default", Reply(cut_after=0)),
    "malformed": lambda d: setattr(d, "default", Reply(malformed=True)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_failure_is_a_provider_error(setup: Setup, scenario: str) -> None:
    SCENARIOS[scenario](setup.double)
    _, error = await until_error(setup.make(timeout=0.3, max_retries=1), setup.ask())
    assert isinstance(error, ProviderError), repr(error)
    assert type(error).__module__ == "providers.errors"
    assert KEY not in str(error)


async def test_a_dead_server_raises_provider_errors_only(setup: Setup) -> None:
    provider = setup.make(base_url=setup.base_url, max_retries=0)
    await setup.double.stop()
    for call in (provider.list_models(), provider.complete(setup.ask())):
        with pytest.raises(ProviderError) as caught:
            await call
        assert type(caught.value).__module__ == "providers.errors"
