"""The model catalog (SPEC "The model catalog"): a TOML file validated into typed models.

A bad catalog is refused with one message per problem, each naming the file, the line
of the entry (where the entry has a header line of its own) and what is wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from providers.base import ProviderConfig
from providers.registry import KINDS

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_STATE = "_unreachable"  # Catalog._views: the providers unreachable when the views were built

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
MIN_COMPARE, MAX_COMPARE = 2, 4

ModelType = Literal["chat", "image", "transcription"]
# How a model of each type is named in a catalog problem ("an image model").
_TYPE_NAMES = {
    "chat": "a chat model",
    "image": "an image model",
    "transcription": "a transcription model",
}


class CatalogError(ValueError):
    """The catalog cannot be used; the message lists every problem found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    model: str
    daily_limit: int = Field(default=0, ge=0)
    compare: tuple[str, ...] = ()
    image: str | None = None  # the image model /image starts on (type "image")
    transcription: str | None = None  # the model voice messages go to (type "transcription")
    merge: str | None = None  # the model that merges compared answers ("Merge")


class ProviderSpec(_Strict):
    kind: str
    base_url: str = Field(pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)


class ModelSpec(_Strict):
    id: str
    title: str = Field(min_length=1, max_length=64)
    provider: str
    name: str = Field(min_length=1)
    daily_limit: int | None = Field(default=None, ge=0)
    cost: int = Field(default=1, ge=0, le=1000)
    context: int | None = Field(default=None, gt=0)
    # "chat" (the default): answers in /model and /compare; "image": draws for /image;
    # "transcription": turns voice messages into text.
    type: ModelType = "chat"
    vision: StrictBool = False  # a chat model that accepts images (photos sent to it)
    # Image models: "images" (default), the openai kind's images API; "chat": chat
    # completions with image output, as gateways (OpenRouter) serve image models.
    image_api: Literal["images", "chat"] = "images"
    edits: StrictBool = False  # an image model that edits a photo sent with /image


PRODUCT_ID = re.compile(r"^[a-z0-9_-]{1,16}$")


class PackSpec(_Strict):
    """A one-off pack of paid credits, bought with Telegram Stars (SPEC "Paid credits")."""

    id: str
    title: str = Field(min_length=1, max_length=32)
    stars: int = Field(ge=1, le=10000)
    credits: int = Field(gt=0, le=10_000_000)


class PlanSpec(_Strict):
    """A monthly subscription: its daily allowance replaces the free one while active."""

    id: str
    title: str = Field(min_length=1, max_length=32)
    stars: int = Field(ge=1, le=10000)
    daily_limit: int = Field(gt=0, le=10_000_000)


@dataclass(frozen=True)
class Catalog:
    """The validated catalog, with the models whose provider has no key set apart."""

    path: Path
    defaults: Defaults
    providers: dict[str, ProviderSpec]
    all_models: dict[str, ModelSpec]
    hidden: dict[str, str] = field(default_factory=dict)  # model id -> missing variable
    keys: dict[str, str] = field(default_factory=dict, repr=False)  # provider -> API key
    # Providers that did not answer the probe at start (ProviderPool): their models are
    # hidden until a later probe reaches them. Changed in place, by the pool only.
    unreachable: set[str] = field(default_factory=set)
    packs: dict[str, PackSpec] = field(default_factory=dict)  # what /buy sells, in order
    plans: dict[str, PlanSpec] = field(default_factory=dict)
    # The views below (usable models by type, the defaults), each built once for the
    # current ``unreachable`` (the only part that changes): every message asks for several
    # (its prefs, its admission), and building them walks the whole catalog. The dicts
    # handed out are shared: never change them.
    _views: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _view(self, name: str, build: Callable[[], _T]) -> _T:
        views = self._views
        if views.get(_STATE) != self.unreachable:  # a probe hid or showed a provider
            views.clear()
            views[_STATE] = frozenset(self.unreachable)
        if name not in views:
            views[name] = build()
        return cast(_T, views[name])

    @property
    def sells(self) -> bool:
        """Whether there is anything to buy (/buy, in menus and help)."""
        return bool(self.packs or self.plans)

    def is_hidden(self, model_id: str) -> bool:
        """Whether a model is out of use: its key is unset, or its provider unreachable."""
        if model_id in self.hidden:
            return True
        model = self.all_models.get(model_id)
        return model is None or model.provider in self.unreachable

    def visible(self, model_type: ModelType) -> dict[str, ModelSpec]:
        """The usable models of one type (their provider has its key and answers), in
        catalog order."""
        return self._view(
            model_type,
            lambda: {
                k: m
                for k, m in self.all_models.items()
                if m.type == model_type and not self.is_hidden(k)
            },
        )

    @property
    def models(self) -> dict[str, ModelSpec]:
        """The chat models users can pick: every one whose provider is usable."""
        return self.visible("chat")

    @property
    def image_models(self) -> dict[str, ModelSpec]:
        """The usable image models, for /image and the image section of /model."""
        return self.visible("image")

    @property
    def transcription_models(self) -> dict[str, ModelSpec]:
        """The usable speech-to-text models, for voice messages."""
        return self.visible("transcription")

    @property
    def vision_models(self) -> dict[str, ModelSpec]:
        """The usable chat models that can see images."""
        return self._view("vision", lambda: {k: m for k, m in self.models.items() if m.vision})

    @property
    def usable(self) -> dict[str, ModelSpec]:
        """Every usable model, of any type: what counts against limits, shown in /limits."""
        return self._view(
            "usable", lambda: {k: m for k, m in self.all_models.items() if not self.is_hidden(k)}
        )

    @property
    def editing_models(self) -> dict[str, ModelSpec]:
        """The usable image models that edit photos (``edits = true``)."""
        return self._view(
            "editing", lambda: {k: m for k, m in self.image_models.items() if m.edits}
        )

    def get(self, model_id: str) -> ModelSpec | None:
        """A usable chat model."""
        return self.models.get(model_id)

    def get_image(self, model_id: str) -> ModelSpec | None:
        """A usable image model."""
        return self.image_models.get(model_id)

    @property
    def default_model(self) -> str:
        """The model a new user starts on: the catalog's, or else the cheapest usable
        chat model (the first of those in catalog order)."""
        return self._view("default", self._default_model)

    def _default_model(self) -> str:
        models = self.models
        if self.defaults.model in models:
            return self.defaults.model
        return min(models, key=lambda k: models[k].cost)

    @property
    def default_image(self) -> str | None:
        """The image model /image starts on: the catalog's, or the first usable one;
        None when no image model is usable."""
        chosen = self.defaults.image
        if chosen is not None and chosen in self.image_models:
            return chosen
        return next(iter(self.image_models), None)

    @property
    def default_merge(self) -> str:
        """The model "Merge" starts on: the catalog's, or the default chat model."""
        chosen = self.defaults.merge
        return chosen if chosen is not None and chosen in self.models else self.default_model

    @property
    def transcription_model(self) -> ModelSpec | None:
        """The model voice messages go to: the catalog's, or the first usable one."""
        models = self.transcription_models
        chosen = self.defaults.transcription
        if chosen is not None and chosen in models:
            return models[chosen]
        return next(iter(models.values()), None)

    @property
    def default_compare(self) -> list[str]:
        """The catalog's compare set without hidden models, topped up to its size (at
        least two) with the cheapest usable chat models, in catalog order: past two, only
        with models no dearer than the catalog's own choices (an operator with one
        provider key still compares several models, none of them dear)."""
        return list(self._view("compare", self._default_compare))

    def _default_compare(self) -> list[str]:
        models = self.models
        chosen = [m for m in self.defaults.compare if m in models]
        size = max(MIN_COMPARE, len(self.defaults.compare))
        named = [self.all_models[m].cost for m in self.defaults.compare if m in self.all_models]
        cap = max(named, default=1)
        order = {k: i for i, k in enumerate(models)}
        for model_id in sorted(models, key=lambda k: (models[k].cost, order[k])):
            if len(chosen) >= size:
                break
            if model_id not in chosen and (
                len(chosen) < MIN_COMPARE or models[model_id].cost <= cap
            ):
                chosen.append(model_id)
        return chosen

    def used_providers(self) -> list[str]:
        """Providers with a key (or needing none) that serve a model, in catalog order;
        one whose probe failed is still used (its models come back when it answers)."""
        used = {m.provider for k, m in self.all_models.items() if k not in self.hidden}
        return [name for name in self.providers if name in used]

    def fallbacks(self) -> list[str]:
        """What the defaults became because of hidden models, one sentence each (logged
        at start and shown by ``check``): nothing is replaced silently."""
        said: list[str] = []
        if self.default_model != self.defaults.model:
            said.append(
                f"default model {self.defaults.model!r} is {self._why(self.defaults.model)}: "
                f"new users start on {self.default_model!r}"
            )
        compare = self.default_compare
        if compare != list(self.defaults.compare) and self.defaults.compare:
            gone = [m for m in self.defaults.compare if m not in compare]
            said.append(
                f"compare models {', '.join(map(repr, gone))} are hidden: the default "
                f"compare set is {', '.join(map(repr, compare))}"
            )
        image = self.defaults.image
        if image is not None and image != self.default_image:
            instead = self.default_image
            said.append(
                f"image model {image!r} is {self._why(image)}: "
                + (f"/image draws with {instead!r}" if instead else "no image model is usable")
            )
        return said

    def _why(self, model_id: str) -> str:
        if model_id in self.hidden:
            return f"hidden ({self.hidden[model_id]} is not set)"
        return "hidden (its provider did not answer)"

    def provider_config(self, name: str) -> ProviderConfig:
        spec = self.providers[name]
        return ProviderConfig(
            name=name,
            kind=spec.kind,
            base_url=spec.base_url,
            api_key=self.keys.get(name),
            timeout=spec.timeout,
            max_retries=spec.max_retries,
        )


def load_catalog(path: Path, environ: Mapping[str, str]) -> Catalog:
    """Read, validate and resolve the catalog; raise CatalogError naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the model catalog: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    return _Validator(path, text, data).catalog(environ)


class _Validator:
    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.data = data
        self.problems: list[str] = []
        # Model ids written in the file whose entry was refused: their own problem is
        # reported, so nothing that names them complains again (no cascade).
        self.refused_ids: set[str] = set()

    def problem(self, where: str, what: str, line: int | None = None) -> None:
        at = f"{self.path}:{line}" if line else str(self.path)
        self.problems.append(f"{at}: {where}: {what}")

    def header_line(self, pattern: str, occurrence: int = 0) -> int | None:
        """1-based line of the ``occurrence``-th header matching ``pattern``."""
        regex = re.compile(pattern)
        seen = 0
        for number, line in enumerate(self.lines, start=1):
            if regex.match(line.strip()):
                if seen == occurrence:
                    return number
                seen += 1
        return None

    def parse(self, model: type[_Strict], raw: Any, where: str, line: int | None) -> Any:
        if not isinstance(raw, dict):
            self.problem(where, "must be a table", line)
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"]) or "entry"
                if error["type"] == "extra_forbidden":
                    self.problem(where, f"unknown field {name!r}", line)
                elif error["type"] == "missing":
                    self.problem(where, f"{name} is required", line)
                else:
                    self.problem(where, f"{name}: {error['msg']}", line)
            return None

    def catalog(self, environ: Mapping[str, str]) -> Catalog:
        for key in self.data:
            if key not in ("defaults", "providers", "models", "packs", "plans"):
                self.problem(
                    key, "unknown section (expected defaults, providers, models, packs, plans)"
                )
        defaults = self.parse(
            Defaults, self.data.get("defaults"), "[defaults]", self.header_line(r"^\[defaults\]")
        )
        providers = self.providers()
        models = self.models(providers)
        packs = self.products("packs", PackSpec)
        plans = self.products("plans", PlanSpec)
        if defaults is not None:
            self.check_defaults(defaults, models)
        if not models and not self.problems:
            self.problem("[[models]]", "the catalog has no models")
        elif models and not self.refused_ids and not any(m.type == "chat" for m in models.values()):
            self.problem("[[models]]", 'the catalog has no chat models (type = "chat")')
        if self.problems:
            raise CatalogError("the model catalog is not valid:\n  " + "\n  ".join(self.problems))
        assert defaults is not None
        catalog = _resolve(self.path, defaults, providers, models, environ)
        return dataclasses.replace(catalog, packs=packs, plans=plans)

    def products(self, section: str, spec: type[_Strict]) -> dict[str, Any]:
        """``[[packs]]`` or ``[[plans]]``: ids unique over both sections."""
        raw = self.data.get(section, [])
        if not isinstance(raw, list):
            self.problem(section, f"must be an array of tables ([[{section}]])")
            return {}
        taken = set() if section == "packs" else self._pack_ids()
        result: dict[str, Any] = {}
        for index, entry in enumerate(raw):
            line = self.header_line(rf"^\[\[{section}\]\]", index)
            label = entry.get("id") if isinstance(entry, dict) else None
            where = f"[[{section}]] #{index + 1}" + (f" (id {label!r})" if label else "")
            product = self.parse(spec, entry, where, line)
            if product is None:
                continue
            if not PRODUCT_ID.match(product.id):
                self.problem(where, "id must be 1-16 characters of a-z, 0-9, '_', '-'", line)
            elif product.id in result or product.id in taken:
                self.problem(where, f"duplicate pack or plan id {product.id!r}", line)
            else:
                result[product.id] = product
        return result

    def _pack_ids(self) -> set[str]:
        raw = self.data.get("packs", [])
        if not isinstance(raw, list):
            return set()
        return {e["id"] for e in raw if isinstance(e, dict) and isinstance(e.get("id"), str)}

    @property
    def declared(self) -> set[str]:
        """Provider names in the file, valid or not (invalid ones are reported already)."""
        raw = self.data.get("providers")
        return set(raw) if isinstance(raw, dict) else set()

    def providers(self) -> dict[str, ProviderSpec]:
        raw = self.data.get("providers", {})
        if not isinstance(raw, dict) or not raw:
            self.problem("[providers]", "at least one provider is required")
            return {}
        result: dict[str, ProviderSpec] = {}
        for name, entry in raw.items():
            where = f"[providers.{name}]"
            line = self.header_line(rf"^\[providers\.{re.escape(name)}\]")
            spec = self.parse(ProviderSpec, entry, where, line)
            if spec is None:
                continue
            if spec.kind not in KINDS:
                known = ", ".join(KINDS)
                self.problem(where, f"unknown kind {spec.kind!r} (known kinds: {known})", line)
                continue
            result[name] = spec
        return result

    def models(self, providers: dict[str, ProviderSpec]) -> dict[str, ModelSpec]:
        raw = self.data.get("models", [])
        if not isinstance(raw, list):
            self.problem("models", "must be an array of tables ([[models]])")
            return {}
        result: dict[str, ModelSpec] = {}
        for index, entry in enumerate(raw):
            line = self.header_line(r"^\[\[models\]\]", index)
            label = entry.get("id") if isinstance(entry, dict) else None
            where = f"[[models]] #{index + 1}" + (f" (id {label!r})" if label else "")
            spec = self.parse(ModelSpec, entry, where, line)
            if spec is None:
                if isinstance(label, str):
                    self.refused_ids.add(label)
                continue
            if not MODEL_ID.match(spec.id):
                self.problem(
                    where,
                    "id must be 1-32 characters of a-z, 0-9, '.', '_', '-' "
                    "(it goes into Telegram button data)",
                    line,
                )
            elif spec.id in result:
                self.problem(where, f"duplicate model id {spec.id!r}", line)
            elif spec.provider not in providers and spec.provider not in self.declared:
                known = ", ".join(providers) or "none"
                self.problem(
                    where, f"provider {spec.provider!r} is not defined (providers: {known})", line
                )
                self.refused_ids.add(spec.id)
            else:  # kept even if its provider is invalid: that is reported already
                result[spec.id] = spec
            self.check_fields(spec, providers, where, line)
        return result

    def check_fields(
        self, spec: ModelSpec, providers: dict[str, ProviderSpec], where: str, line: int | None
    ) -> None:
        """Fields that apply to some types or kinds only."""
        this = f"(this is {_TYPE_NAMES[spec.type]})"
        if spec.type != "chat":
            for name, value in (("vision", spec.vision), ("context", spec.context)):
                if value:
                    self.problem(where, f"{name} applies to chat models only {this}", line)
        if spec.type != "image":
            for name, value in (("edits", spec.edits), ("image_api", spec.image_api != "images")):
                if value:
                    self.problem(where, f"{name} applies to image models only {this}", line)
        provider = providers.get(spec.provider)
        if spec.image_api == "chat" and provider is not None and provider.kind != "openai":
            self.problem(
                where,
                f'image_api = "chat" needs an openai-kind provider ({spec.provider!r} is '
                f"{provider.kind})",
                line,
            )

    def check_defaults(self, defaults: Defaults, models: dict[str, ModelSpec]) -> None:
        line = self.header_line(r"^\[defaults\]")
        wanted: list[tuple[str, str | None, ModelType]] = [
            ("model", defaults.model, "chat"),
            *(("compare model", m, "chat") for m in defaults.compare),
            ("image", defaults.image, "image"),
            ("transcription", defaults.transcription, "transcription"),
            ("merge", defaults.merge, "chat"),
        ]
        for what, model_id, model_type in wanted:
            if model_id is None or not models or model_id in self.refused_ids:
                continue  # a refused entry's own problem is reported already
            if model_id not in models:
                self.problem("[defaults]", f"{what} {model_id!r} is not in the catalog", line)
            elif models[model_id].type != model_type:
                actual = _TYPE_NAMES[models[model_id].type]
                self.problem(
                    "[defaults]",
                    f"{what} {model_id!r} is {actual}, not {_TYPE_NAMES[model_type]}",
                    line,
                )
        if len(set(defaults.compare)) != len(defaults.compare):
            self.problem("[defaults]", "compare lists a model twice", line)
        if len(defaults.compare) > MAX_COMPARE:
            self.problem("[defaults]", f"compare lists more than {MAX_COMPARE} models", line)


def _resolve(
    path: Path,
    defaults: Defaults,
    providers: dict[str, ProviderSpec],
    models: dict[str, ModelSpec],
    environ: Mapping[str, str],
) -> Catalog:
    """Find each provider's key; hide the models of providers whose key is unset."""
    keys: dict[str, str] = {}
    missing: dict[str, str] = {}  # provider -> variable
    for name, spec in providers.items():
        if spec.api_key_env is None:
            continue
        value = environ.get(spec.api_key_env, "").strip()
        if value:
            keys[name] = value
        else:
            missing[name] = spec.api_key_env
    hidden = {mid: missing[m.provider] for mid, m in models.items() if m.provider in missing}
    for variable in sorted(set(missing.values())):
        count = sum(1 for v in hidden.values() if v == variable)
        if count:
            log.warning("%s is not set: %d model(s) hidden", variable, count)
    chat = [mid for mid, m in models.items() if m.type == "chat"]
    if all(mid in hidden for mid in chat):
        variables = ", ".join(sorted({hidden[mid] for mid in chat}))
        raise CatalogError(f"{path}: no model is usable: set at least one of {variables}")
    catalog = Catalog(path, defaults, providers, models, hidden, keys)
    for line in catalog.fallbacks():
        log.warning("%s", line)
    return catalog
