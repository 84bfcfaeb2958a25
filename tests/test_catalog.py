"""Catalog validation: each bad catalog is refused with its own message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.catalog import CatalogError, load_catalog
from bot.settings import DEFAULT_MODELS_FILE

GOOD = """\
[defaults]
model = "small"
daily_limit = 50
compare = ["small", "big"]

[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
timeout = 30

[providers.local]
kind = "ollama"
base_url = "http://localhost:11434"

[[models]]
id = "small"
title = "Small"
provider = "openai"
name = "gpt-5-mini"
daily_limit = 20
cost = 2
context = 128000

[[models]]
id = "big"
title = "Big"
provider = "local"
name = "llama3.2"
"""

KEYS = {"OPENAI_API_KEY": "sk-test"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path, KEYS if environ is None else environ)
    message = str(info.value)
    assert str(path) in message
    return message


def test_good_catalog_loads_typed(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), KEYS)
    assert list(catalog.models) == ["small", "big"]
    small = catalog.models["small"]
    assert (small.daily_limit, small.cost, small.context) == (20, 2, 128000)
    assert catalog.models["big"].cost == 1  # default
    assert catalog.defaults.daily_limit == 50
    config = catalog.provider_config("openai")
    assert (config.kind, config.api_key, config.timeout) == ("openai", "sk-test", 30)
    assert catalog.provider_config("local").api_key is None
    assert catalog.default_model == "small"
    assert catalog.default_compare == ["small", "big"]


def test_model_without_key_is_hidden_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        catalog = load_catalog(write(tmp_path, GOOD), {})
    assert list(catalog.models) == ["big"]
    assert catalog.hidden == {"small": "OPENAI_API_KEY"}
    assert catalog.get("small") is None
    # The default falls back to the cheapest usable model; compare drops hidden ones.
    assert catalog.default_model == "big"
    assert catalog.default_compare == ["big"]  # the only usable model
    warnings = [r.getMessage() for r in caplog.records if "OPENAI_API_KEY" in r.getMessage()]
    assert warnings[0] == "OPENAI_API_KEY is not set: 1 model(s) hidden"
    # and the fallback is said, not silent
    assert any("new users start on 'big'" in w for w in warnings)
    assert catalog.used_providers() == ["local"]


def test_unknown_kind(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('kind = "ollama"', 'kind = "olama"'))
    assert "[providers.local]" in message
    assert "unknown kind 'olama'" in message
    assert message.count("\n") == 1  # one problem, no knock-on complaints
    assert "models.toml:12:" in message  # the line of [providers.local]


def test_duplicate_model_id(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('id = "big"', 'id = "small"'))
    assert "duplicate model id 'small'" in message
    assert "[[models]] #2" in message
    assert "models.toml:25:" in message  # the line of the second [[models]]


def test_missing_provider(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('provider = "local"', 'provider = "nowhere"'))
    assert "provider 'nowhere' is not defined" in message
    assert "(id 'big')" in message


def test_default_not_in_catalog(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('model = "small"', 'model = "huge"'))
    assert "[defaults]" in message
    assert "model 'huge' is not in the catalog" in message


def test_compare_model_not_in_catalog(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('["small", "big"]', '["small", "gone"]'))
    assert "compare model 'gone' is not in the catalog" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("daily_limit = 20", "daily_limit = -1", "daily_limit: Input should be greater than"),
        ("cost = 2", 'cost = "two"', "cost: Input should be a valid integer"),
        ("context = 128000", "context = 0", "context: Input should be greater than 0"),
        ("timeout = 30", "timeout = -5", "timeout: Input should be greater than 0"),
        ("daily_limit = 50", "daily_limit = -3", "daily_limit: Input should be greater than"),
    ],
)
def test_bad_numbers(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in refused(tmp_path, GOOD.replace(old, new))


@pytest.mark.parametrize("bad_id", ["has:colon", "UPPER", "x" * 33, "", "with space", "é"])
def test_model_id_must_be_short_and_plain(tmp_path: Path, bad_id: str) -> None:
    message = refused(tmp_path, GOOD.replace('id = "big"', f'id = "{bad_id}"'))
    assert "id must be 1-32 characters" in message


def test_unknown_field_and_missing_field(tmp_path: Path) -> None:
    text = GOOD.replace('title = "Big"\n', 'titel = "Big"\n')
    message = refused(tmp_path, text)
    assert "unknown field 'titel'" in message
    assert "title is required" in message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = GOOD.replace('kind = "ollama"', 'kind = "x"').replace('model = "small"', 'model = "y"')
    message = refused(tmp_path, text)
    assert "unknown kind 'x'" in message
    assert "model 'y' is not in the catalog" in message


def test_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in refused(tmp_path, "[defaults\nmodel=")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the model catalog"):
        load_catalog(tmp_path / "nope.toml", {})


def test_no_usable_model_names_the_variables(tmp_path: Path) -> None:
    text = GOOD.replace('provider = "local"', 'provider = "openai"')
    message = refused(tmp_path, text, environ={})
    assert "no model is usable" in message
    assert "OPENAI_API_KEY" in message


SHIPPED_KEYS = ["OPENAI_API_KEY", "GEMINI_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY"]


@pytest.mark.parametrize(
    ("key", "starts_on", "compare"),
    [
        ("OPENAI_API_KEY", "gpt-5-mini", ["gpt-5-mini", "gpt-5-nano", "gpt-4.1-mini"]),
        (
            "GEMINI_API_KEY",
            "gemini-3-flash",
            ["gemini-3-flash", "gemini-2.5-flash", "gemini-2.5-flash-lite"],
        ),
        ("XAI_API_KEY", "grok-4.1-fast", ["grok-4.1-fast", "grok-4-fast", "llama3.2-local"]),
        ("MISTRAL_API_KEY", "mistral-small", ["mistral-small", "codestral", "llama3.2-local"]),
        ("LLAMA_API_KEY", "llama-4-scout", ["llama-4-scout", "llama-3.3-70b", "llama3.2-local"]),
    ],
)
def test_the_shipped_catalog_makes_a_sensible_bot_with_any_one_key(
    key: str, starts_on: str, compare: list[str]
) -> None:
    catalog = load_catalog(DEFAULT_MODELS_FILE, {key: "k"})
    assert catalog.default_model == starts_on
    assert catalog.default_compare == compare
    catalog.unreachable.add("local")  # no Ollama answered the probe at start
    assert catalog.default_compare == [m for m in compare if m != "llama3.2-local"]
    catalog.unreachable.clear()
    assert all(catalog.models[m].cost == 1 for m in compare)  # nothing dear by default
    assert catalog.fallbacks() or key == "OPENAI_API_KEY"  # each fallback is said


def test_the_shipped_catalog_with_every_key() -> None:
    catalog = load_catalog(DEFAULT_MODELS_FILE, {k: "k" for k in [*SHIPPED_KEYS, "LLAMA_API_KEY"]})
    kinds = {catalog.providers[m.provider].kind for m in catalog.all_models.values()}
    assert kinds == {"openai", "gemini", "mistral", "llama", "ollama"}
    assert catalog.default_model == "gpt-5-mini"
    assert catalog.default_compare == ["gpt-5-mini", "gemini-3-flash", "grok-4.1-fast"]
    assert catalog.fallbacks() == []
    names = {m.name for m in catalog.all_models.values()}
    expected = {
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gemini-3-flash-preview",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "grok-4-1-fast-non-reasoning",
        "grok-4-fast-non-reasoning",
        "Llama-4-Maverick-17B-128E-Instruct-FP8",
        "Llama-4-Scout-17B-16E-Instruct-FP8",
        "mistral-large-latest",
        "mistral-small-latest",
        "gpt-image-1",
        "gemini-2.5-flash-image",
        "gemini-3-pro-image-preview",
    }
    assert expected <= names
    dear = {k: m.cost for k, m in catalog.models.items() if m.cost > 1}
    assert dear == {"gpt-5": 5, "mistral-large": 3, "llama-4-maverick": 2}
    assert set(catalog.editing_models) == {
        "gemini-2.5-flash-image",
        "gpt-image-1",
        "gemini-3-pro-image",
    }


def test_the_shipped_catalog_cites_a_source_for_every_model() -> None:
    lines = DEFAULT_MODELS_FILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() == "[[models]]" and not lines[number - 1].lstrip().startswith("# "):
            raise AssertionError(f"line {number + 1}: no source above this model")
        if line.strip() == "[[models]]":
            above = "\n".join(lines[max(0, number - 4) : number])
            assert "https://" in above, f"line {number + 1}: no source URL"


def test_env_example_names_every_key_the_catalog_uses() -> None:
    example = (DEFAULT_MODELS_FILE.parents[1] / ".env.example").read_text()
    variables = {
        p.api_key_env
        for p in load_catalog(DEFAULT_MODELS_FILE, {"OPENAI_API_KEY": "k"}).providers.values()
        if p.api_key_env
    }
    assert variables == {*SHIPPED_KEYS, "LLAMA_API_KEY"}
    for variable in variables:
        assert f"\n{variable}=" in example, variable


def test_an_unreachable_provider_hides_its_models_until_it_answers(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), KEYS)
    catalog.unreachable.add("local")
    assert list(catalog.models) == ["small"] and catalog.get("big") is None
    assert catalog.default_compare == ["small"]
    assert catalog.used_providers() == ["openai", "local"]  # still probed, still pooled
    catalog.unreachable.discard("local")
    assert list(catalog.models) == ["small", "big"]


def test_views_are_built_once_for_each_state_of_the_unreachable_providers(
    tmp_path: Path,
) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), KEYS)
    assert catalog.models is catalog.models and catalog.usable is catalog.usable
    compare = catalog.default_compare
    compare.append("changed by a caller")
    assert catalog.default_compare == ["small", "big"]  # a copy each time
    usable = catalog.usable
    catalog.unreachable.add("local")
    assert catalog.usable is not usable and "big" not in catalog.usable
    catalog.unreachable.clear()
    assert list(catalog.usable) == list(usable)


def test_errors_do_not_cascade_from_a_refused_entry(tmp_path: Path) -> None:
    """A duplicate id and a broken entry are reported as such; nothing that names the
    broken entry complains that it is missing."""
    text = (
        GOOD.replace('compare = ["small", "big"]', 'compare = ["small", "big", "broken"]').replace(
            'model = "small"', 'model = "broken"'
        )
        + '\n[[models]]\nid = "small"\ntitle = "Again"\nprovider = "openai"\nname = "x"\n'
        + '\n[[models]]\nid = "broken"\ntitle = "Broken"\nprovider = "openai"\ncost = -1\n'
    )
    message = refused(tmp_path, text)
    assert "duplicate model id 'small'" in message
    assert "(id 'broken')" in message and "name is required" in message
    assert "cost: Input should be greater than or equal to 0" in message
    assert "not in the catalog" not in message
    assert "no chat models" not in message
    assert message.count("\n") == 3, message


def test_a_default_naming_a_model_with_a_missing_provider_does_not_cascade(
    tmp_path: Path,
) -> None:
    message = refused(tmp_path, GOOD.replace('provider = "local"', 'provider = "nowhere"'))
    assert "provider 'nowhere' is not defined" in message
    assert "not in the catalog" not in message
    assert message.count("\n") == 1


# --- image, transcription and vision models ---------------------------------------------

MEDIA = """
[[models]]
id = "painter"
title = "Painter"
provider = "openai"
name = "gpt-image-1"
type = "image"
cost = 5

[[models]]
id = "ears"
title = "Ears"
provider = "openai"
name = "gpt-4o-mini-transcribe"
type = "transcription"
"""


def test_old_catalogs_have_chat_models_only(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, GOOD), KEYS)
    assert all(m.type == "chat" and not m.vision for m in catalog.all_models.values())
    assert catalog.image_models == {} and catalog.default_image is None
    assert catalog.transcription_model is None and catalog.vision_models == {}


def test_image_and_transcription_models_are_kept_apart(tmp_path: Path) -> None:
    text = GOOD.replace('name = "gpt-5-mini"\n', 'name = "gpt-5-mini"\nvision = true\n') + MEDIA
    catalog = load_catalog(write(tmp_path, text), KEYS)
    assert list(catalog.models) == ["small", "big"]  # what /model and /compare offer
    assert list(catalog.image_models) == ["painter"]
    assert catalog.image_models["painter"].cost == 5
    assert catalog.default_image == "painter"  # the first, when [defaults] names none
    assert catalog.transcription_model is not None
    assert catalog.transcription_model.id == "ears"
    assert list(catalog.vision_models) == ["small"]
    assert catalog.get("painter") is None and catalog.get_image("painter") is not None
    assert catalog.get_image("small") is None
    assert list(catalog.usable) == ["small", "big", "painter", "ears"]


def test_defaults_name_the_image_and_transcription_models(tmp_path: Path) -> None:
    more = MEDIA.replace('id = "painter"', 'id = "painter2"').replace('id = "ears"', 'id = "ears2"')
    defaults = 'daily_limit = 50\nimage = "painter2"\ntranscription = "ears2"\n'
    text = GOOD.replace("daily_limit = 50\n", defaults) + MEDIA + more
    catalog = load_catalog(write(tmp_path, text), KEYS)
    assert catalog.default_image == "painter2"
    assert catalog.transcription_model is not None
    assert catalog.transcription_model.id == "ears2"


def test_media_models_without_their_key_are_hidden(tmp_path: Path) -> None:
    text = GOOD.replace("daily_limit = 50\n", 'daily_limit = 50\nimage = "painter"\n') + MEDIA
    catalog = load_catalog(write(tmp_path, text), {})
    assert catalog.image_models == {} and catalog.default_image is None
    assert catalog.transcription_model is None
    assert catalog.used_providers() == ["local"]


def test_providers_of_media_models_are_used(tmp_path: Path) -> None:
    text = GOOD.replace('provider = "openai"', 'provider = "local"', 1) + MEDIA
    catalog = load_catalog(write(tmp_path, text), KEYS)
    assert catalog.used_providers() == ["openai", "local"]  # openai serves only /image


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('type = "image"', 'type = "video"', "type: Input should be 'chat', 'image' or"),
        ('type = "image"', 'type = "image"\nvision = true', "vision applies to chat models only"),
        ('type = "image"', 'type = "image"\ncontext = 1000', "context applies to chat models"),
        ('name = "gpt-image-1"', 'name = "gpt-image-1"\nvision = "yes"', "vision: Input should"),
        ('type = "image"', 'type = "image"\nimage_api = "fax"', "image_api: Input should be"),
        ('type = "image"', 'type = "image"\nedits = "yes"', "edits: Input should be a valid"),
        ('type = "image"', 'type = "transcription"\nedits = true', "edits applies to image"),
        (
            'type = "image"',
            'type = "transcription"\nimage_api = "chat"',
            "image_api applies to image models only",
        ),
    ],
)
def test_bad_media_fields_name_the_entry(tmp_path: Path, old: str, new: str, expected: str) -> None:
    message = refused(tmp_path, GOOD + MEDIA.replace(old, new))
    assert expected in message
    assert "(id 'painter')" in message
    assert message.count("\n") == 1  # one problem


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ('image = "ears"', "image 'ears' is a transcription model, not an image model"),
        ('image = "small"', "image 'small' is a chat model, not an image model"),
        ('image = "nowhere"', "image 'nowhere' is not in the catalog"),
        ('transcription = "painter"', "transcription 'painter' is an image model, not a"),
        ('model = "painter"', "model 'painter' is an image model, not a chat model"),
    ],
)
def test_defaults_must_name_models_of_the_right_type(
    tmp_path: Path, defaults: str, expected: str
) -> None:
    text = GOOD.replace('model = "small"\n', "") + MEDIA
    if not defaults.startswith("model"):
        defaults = 'model = "small"\n' + defaults
    text = text.replace("[defaults]\n", f"[defaults]\n{defaults}\n")
    message = refused(tmp_path, text)
    assert "[defaults]" in message and expected in message


def test_image_api_chat_needs_an_openai_provider(tmp_path: Path) -> None:
    text = GOOD + MEDIA.replace('provider = "openai"', 'provider = "local"', 1).replace(
        'type = "image"', 'type = "image"\nimage_api = "chat"\nedits = true'
    )
    message = refused(tmp_path, text)
    assert "image_api = \"chat\" needs an openai-kind provider ('local' is ollama)" in message
    ok = load_catalog(
        write(
            tmp_path, GOOD + MEDIA.replace('type = "image"', 'type = "image"\nimage_api = "chat"')
        ),
        KEYS,
    )
    assert ok.image_models["painter"].image_api == "chat"
    assert ok.editing_models == {}


def test_compare_takes_chat_models_only(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('["small", "big"]', '["small", "painter"]') + MEDIA)
    assert "compare model 'painter' is an image model, not a chat model" in message


def test_a_catalog_needs_a_chat_model(tmp_path: Path) -> None:
    head = GOOD[: GOOD.index("[[models]]")].replace('compare = ["small", "big"]\n', "")
    text = head.replace('model = "small"', 'model = "painter"') + MEDIA
    message = refused(tmp_path, text)
    assert "the catalog has no chat models" in message


def test_no_usable_chat_model_is_refused_even_with_media_models(tmp_path: Path) -> None:
    text = GOOD.replace('provider = "local"', 'provider = "openai"') + MEDIA.replace(
        'provider = "openai"', 'provider = "local"'
    )
    message = refused(tmp_path, text, environ={})
    assert "no model is usable" in message and "OPENAI_API_KEY" in message


def test_shipped_catalog_has_media_models() -> None:
    catalog = load_catalog(DEFAULT_MODELS_FILE, {"OPENAI_API_KEY": "k", "LLAMA_API_KEY": "k"})
    assert catalog.default_image == "gpt-image-1"  # the catalog's (Gemini's) is hidden
    assert catalog.image_models["gpt-image-1"].provider == "openai"
    gemini = load_catalog(DEFAULT_MODELS_FILE, {"GEMINI_API_KEY": "k"})
    assert gemini.default_image == "gemini-2.5-flash-image"
    assert list(gemini.image_models) == ["gemini-2.5-flash-image", "gemini-3-pro-image"]
    assert catalog.transcription_model is not None
    assert catalog.transcription_model.name == "gpt-4o-mini-transcribe"
    vision = set(catalog.vision_models)
    assert {"gpt-5", "gpt-5-mini", "gpt-5-nano", "llama-4-maverick", "llama-4-scout"} <= vision
    assert "llama-3.3-70b" not in vision
    assert "gpt-image-1" not in catalog.models and "gpt-image-1" not in catalog.default_compare
