"""A user's preferences against the real Redis: current model and compare set, with the
catalog's defaults for anything missing or no longer usable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.catalog import Catalog, load_catalog
from bot.services.prefs import PREFS_TTL, Prefs, UserPrefs

ANN, BOB = 1001, 1002
KEY = {"OPENAI_API_KEY": "sk-test-key"}

CATALOG = """\
[defaults]
model = "{default}"
compare = [{compare}]

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "OPENAI_API_KEY"

[providers.local]
kind = "ollama"
base_url = "http://127.0.0.1:9"
{models}
"""

MODEL = """
[[models]]
id = "{id}"
title = "Title of {id}"
provider = "{provider}"
name = "{id}-name"
"""

MakeCatalog = Callable[..., Catalog]

PROVIDERS = {"gpt": "openai", "llama": "local", "qwen": "local", "phi": "local"}


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def make_catalog(tmp_path: Path) -> MakeCatalog:
    """A catalog of some of gpt (needs OPENAI_API_KEY), llama, qwen, phi (no key)."""
    written = 0

    def make(
        models: tuple[str, ...] = ("gpt", "llama", "qwen", "phi"),
        default: str = "llama",
        compare: tuple[str, ...] = ("llama", "qwen"),
        environ: Mapping[str, str] = KEY,
    ) -> Catalog:
        nonlocal written
        written += 1
        path = tmp_path / f"models-{written}.toml"
        path.write_text(
            CATALOG.format(
                default=default,
                compare=", ".join(f'"{m}"' for m in compare),
                models="".join(MODEL.format(id=m, provider=PROVIDERS[m]) for m in models),
            )
        )
        return load_catalog(path, environ)

    return make


async def test_a_new_user_gets_the_catalog_defaults(
    redis: Redis, make_catalog: MakeCatalog
) -> None:
    prefs = Prefs(redis, make_catalog())
    assert await prefs.get(ANN) == UserPrefs(
        model="llama", compare=("llama", "qwen"), merge="llama"
    )
    assert await redis.exists(Prefs.key(ANN)) == 0  # reading writes nothing


async def test_set_and_get_the_model(redis: Redis, make_catalog: MakeCatalog) -> None:
    prefs = Prefs(redis, make_catalog())
    await prefs.set(ANN, model="gpt")
    assert (await prefs.get(ANN)).model == "gpt"
    await prefs.set(ANN, model="phi")
    assert (await prefs.get(ANN)).model == "phi"
    assert (await prefs.get(BOB)).model == "llama"  # each user their own
    assert (await prefs.get(ANN)).compare == ("llama", "qwen")  # untouched by the model


async def test_a_model_removed_from_the_catalog_falls_back_to_the_default(
    redis: Redis,
    make_catalog: MakeCatalog,
) -> None:
    await Prefs(redis, make_catalog()).set(ANN, model="phi")
    reloaded = Prefs(redis, make_catalog(models=("gpt", "llama", "qwen")))
    assert (await reloaded.get(ANN)).model == "llama"


async def test_a_model_hidden_for_a_missing_key_falls_back_to_the_default(
    redis: Redis,
    make_catalog: MakeCatalog,
) -> None:
    await Prefs(redis, make_catalog()).set(ANN, model="gpt")
    without_key = Prefs(redis, make_catalog(environ={}))
    assert (await without_key.get(ANN)).model == "llama"
    # the key back: the choice was kept all along
    assert (await Prefs(redis, make_catalog()).get(ANN)).model == "gpt"


async def test_a_hidden_default_falls_back_to_a_usable_model(
    redis: Redis,
    make_catalog: MakeCatalog,
) -> None:
    catalog = make_catalog(default="gpt", compare=("gpt", "llama"), environ={})
    got = await Prefs(redis, catalog).get(ANN)
    assert catalog.get(got.model) is not None
    assert len(got.compare) >= 2 and all(catalog.get(m) for m in got.compare)


async def test_compare_set_is_stored_and_parsed(redis: Redis, make_catalog: MakeCatalog) -> None:
    prefs = Prefs(redis, make_catalog())
    await prefs.set(ANN, compare="gpt,qwen,phi")
    assert await redis.hget(Prefs.key(ANN), "compare") == b"gpt,qwen,phi"
    assert await prefs.get(ANN) == UserPrefs(
        model="llama", compare=("gpt", "qwen", "phi"), merge="llama"
    )
    await prefs.set(ANN, model="qwen")
    assert await prefs.get(ANN) == UserPrefs(
        model="qwen", compare=("gpt", "qwen", "phi"), merge="llama"
    )


async def test_unusable_models_leave_the_compare_set(
    redis: Redis, make_catalog: MakeCatalog
) -> None:
    await Prefs(redis, make_catalog()).set(ANN, compare="gpt,qwen,phi")
    got = await Prefs(redis, make_catalog(environ={})).get(ANN)  # gpt hidden
    assert got.compare == ("qwen", "phi")


@pytest.mark.keys_without_expiry(r"prefs:\{\d+\}")  # written here, as damaged data
@pytest.mark.parametrize(
    "stored",
    [
        "gpt,phi",  # phi removed from the catalog, gpt hidden: none left
        "qwen,phi",  # phi removed: one left
        "qwen",
        "",
        "nonsense,,also-nonsense",
    ],
)
async def test_a_set_with_fewer_than_two_usable_models_falls_back(
    redis: Redis,
    make_catalog: MakeCatalog,
    stored: str,
) -> None:
    await redis.hset(Prefs.key(ANN), mapping={"compare": stored})
    catalog = make_catalog(models=("gpt", "llama", "qwen"), environ={})
    got = await Prefs(redis, catalog).get(ANN)
    assert got.compare == tuple(catalog.default_compare) == ("llama", "qwen")


@pytest.mark.keys_without_expiry(r"prefs:\{\d+\}")  # written here, as damaged data
async def test_damaged_values_fall_back_too(redis: Redis, make_catalog: MakeCatalog) -> None:
    await redis.hset(Prefs.key(ANN), mapping={"model": "", "compare": ",,,", "junk": "x"})
    assert await Prefs(redis, make_catalog()).get(ANN) == UserPrefs(
        model="llama", compare=("llama", "qwen"), merge="llama"
    )


async def test_prefs_expire_and_every_change_renews_them(
    redis: Redis,
    make_catalog: MakeCatalog,
) -> None:
    prefs = Prefs(redis, make_catalog())
    await prefs.set(ANN, model="qwen")
    assert PREFS_TTL - 5 <= await redis.ttl(Prefs.key(ANN)) <= PREFS_TTL
    assert PREFS_TTL >= 30 * 24 * 3600  # a user away for a month is not forgotten
    await redis.expire(Prefs.key(ANN), 60)
    await prefs.set(ANN, compare="llama,phi")
    assert PREFS_TTL - 5 <= await redis.ttl(Prefs.key(ANN)) <= PREFS_TTL
    assert await prefs.get(ANN) == UserPrefs(model="qwen", compare=("llama", "phi"), merge="llama")


async def test_the_merge_model_is_stored_and_falls_back(
    redis: Redis, make_catalog: MakeCatalog
) -> None:
    prefs = Prefs(redis, make_catalog())
    await prefs.set(ANN, merge="qwen")
    assert (await prefs.get(ANN)).merge == "qwen"
    await prefs.set(ANN, merge="no-such-model")
    assert (await prefs.get(ANN)).merge == "llama"  # the catalog's: its default model
