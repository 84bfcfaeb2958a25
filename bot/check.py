"""``python -m bot check``: is the configuration good and is everything reachable?"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiogram.exceptions import AiogramError
from redis.exceptions import RedisClusterException

from bot import redis_client
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.redact import Redactor
from bot.settings import Settings
from bot.telegram import make_bot
from providers import ProviderError, registry

TIMEOUT = 10.0


@dataclass
class Row:
    what: str
    ok: bool | None  # None: not checked (no key), does not fail the check
    detail: str


async def run_check(
    settings: Settings, environ: dict[str, str], out: Callable[[str], None] = print
) -> int:
    """Check everything, print a table, and return the exit status (0: all reachable)."""
    redactor = Redactor([settings.bot_token.get_secret_value()])
    try:
        catalog = load_catalog(settings.models_file, environ)
    except CatalogError as exc:
        out(str(exc))
        return 2
    redactor.add(*catalog.keys.values())
    rows = [
        Row(
            "catalog",
            True,
            f"{settings.models_file}: {len(catalog.usable)} of "
            f"{len(catalog.all_models)} models usable, new users start on "
            f"{catalog.default_model!r}",
        )
    ]
    rows += [Row("defaults", None, line) for line in catalog.fallbacks()]
    rows += [
        Row(f"model {m}", None, f"hidden: {var} is not set") for m, var in catalog.hidden.items()
    ]
    names = catalog.used_providers()
    services = asyncio.gather(_check_redis(settings), _check_telegram(settings))
    providers = asyncio.gather(*(_check_provider(catalog, name) for name in names))
    rows += await services
    provided = dict(zip(names, await providers, strict=True))
    rows += [row for row, _ in provided.values()]
    rows += [_image_row(catalog, model_id, provided) for model_id in _image_ids(catalog)]
    width = max(len(r.what) for r in rows)
    for row in rows:
        status = {True: "ok", False: "FAIL", None: "-"}[row.ok]
        out(redactor(f"{row.what:<{width}}  {status:<4}  {row.detail}"))
    failed = sum(1 for r in rows if r.ok is False)
    out(f"{failed} problem(s)" if failed else "all reachable")
    return 1 if failed else 0


async def _check_redis(settings: Settings) -> Row:
    client = redis_client.connect(settings, max_connections=4)
    try:
        await asyncio.wait_for(client.ping(), TIMEOUT)
        found = await asyncio.wait_for(redis_client.describe(client), TIMEOUT)
        return Row("redis", True, f"PING ok, {found}")
    except (aioredis.RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        return Row("redis", False, f"unreachable: {type(exc).__name__}: {exc}")
    finally:
        await redis_client.aclose(client)


async def _check_telegram(settings: Settings) -> Row:
    bot, _ = make_bot(settings)
    try:
        me = await asyncio.wait_for(bot.get_me(), TIMEOUT)
        return Row("telegram", True, f"getMe ok: @{me.username} ({settings.telegram_api_url})")
    except (AiogramError, TimeoutError) as exc:
        return Row("telegram", False, f"getMe failed: {type(exc).__name__}: {exc}")
    finally:
        await bot.session.close()


async def _check_provider(catalog: Catalog, name: str) -> tuple[Row, set[str] | None]:
    """The provider's row, and the model names it lists (None: it failed)."""
    config = catalog.provider_config(name)
    provider = registry.create(config)
    what = f"provider {name}"
    try:
        available = set(await asyncio.wait_for(provider.list_models(), config.timeout))
    except ProviderError as exc:
        return Row(what, False, f"{config.kind}: {type(exc).__name__}: {exc}"), None
    except TimeoutError:
        return Row(what, False, f"{config.kind}: no answer within {config.timeout:g}s"), None
    finally:
        await provider.aclose()
    names = sorted({m.name for m in catalog.usable.values() if m.provider == name})
    missing = [n for n in names if _bare(n) not in available]
    detail = f"{config.kind} at {config.base_url}: reachable, {len(available)} models listed"
    if missing and available:
        detail += f"; not listed (check the names): {', '.join(missing)}"
    return Row(what, True, detail), available


def _image_ids(catalog: Catalog) -> list[str]:
    return [k for k, m in catalog.all_models.items() if m.type == "image"]


def _image_row(
    catalog: Catalog, model_id: str, provided: dict[str, tuple[Row, set[str] | None]]
) -> Row:
    """One image model: where it draws, whether it edits, and whether it is usable."""
    model = catalog.all_models[model_id]
    what = f"image {model_id}"
    kind = catalog.providers[model.provider].kind
    api = " (chat completions)" if model.image_api == "chat" else ""
    edits = "draws and edits photos" if model.edits else "draws (no edits)"
    default = ", the default for /image" if model_id == catalog.default_image else ""
    detail = f"{model.title}: {model.name} on {model.provider} ({kind}{api}), {edits}{default}"
    if model_id in catalog.hidden:
        return Row(what, None, f"{detail}; hidden: {catalog.hidden[model_id]} is not set")
    _, available = provided.get(model.provider, (None, None))
    if available is None:
        return Row(what, None, f"{detail}; its provider failed the check")
    if available and _bare(model.name) not in available:
        return Row(what, None, f"{detail}; not listed by the provider (check the name)")
    return Row(what, True, detail)


def _bare(name: str) -> str:
    """A model name as listings give it (Gemini's catalog names may carry models/)."""
    return name.removeprefix("models/")
