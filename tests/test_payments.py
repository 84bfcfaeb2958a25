"""Paid credits: the catalog's packs and plans, and the signed invoice payload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.catalog import CatalogError, load_catalog
from bot.services.payments import PayloadError, Signer

BASE = """\
[defaults]
model = "m"

[providers.p]
kind = "ollama"
base_url = "http://127.0.0.1:1"

[[models]]
id = "m"
title = "M"
provider = "p"
name = "m"
"""

GOOD = """
[[packs]]
id = "s100"
title = "100 credits"
stars = 50
credits = 100

[[plans]]
id = "plus"
title = "Plus"
stars = 250
daily_limit = 300
"""


def load(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "models.toml"
    path.write_text(BASE + extra)
    return load_catalog(path, {})


def test_packs_and_plans_load(tmp_path: Path) -> None:
    catalog = load(tmp_path, GOOD)
    assert catalog.sells
    assert catalog.packs["s100"].credits == 100 and catalog.plans["plus"].daily_limit == 300
    assert not load(tmp_path, "").sells


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('\n[[packs]]\nid = "a"\ntitle = "A"\nstars = 0\ncredits = 1\n', ":14: [[packs]] #1"),
        ('\n[[packs]]\nid = "a"\ntitle = "A"\nstars = 10001\ncredits = 1\n', "stars"),
        ('\n[[packs]]\nid = "a"\ntitle = "A"\nstars = 1\ncredits = 0\n', "credits"),
        ('\n[[plans]]\nid = "a"\ntitle = "A"\nstars = 1\ndaily_limit = -1\n', "daily_limit"),
        ('\n[[packs]]\nid = "a"\ntitle = "A"\nstars = 1\ncredits = 1\nbonus = 2\n', "'bonus'"),
        ('\n[[packs]]\nid = "A B"\ntitle = "A"\nstars = 1\ncredits = 1\n', "1-16 characters"),
        (
            '\n[[packs]]\nid = "a"\ntitle = "A"\nstars = 1\ncredits = 1\n'
            '\n[[plans]]\nid = "a"\ntitle = "B"\nstars = 1\ndaily_limit = 1\n',
            "duplicate pack or plan id 'a'",
        ),
    ],
)
def test_bad_products_are_refused_with_file_and_line(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(CatalogError) as info:
        load(tmp_path, extra)
    assert problem in str(info.value)
    assert "models.toml:" in str(info.value)


def test_payload_is_signed_short_and_bound_to_its_key() -> None:
    signer = Signer.for_bot("123:token", None)
    payload = signer.make("plan", "abcdefghijklmnop", 10000, 9_999_999_999_999, time.time())
    assert len(payload.encode()) <= 128
    data = signer.read(payload)
    assert (data.kind, data.product, data.stars, data.user_id) == (
        "plan",
        "abcdefghijklmnop",
        10000,
        9_999_999_999_999,
    )
    with pytest.raises(PayloadError):
        Signer.for_bot("123:other", None).read(payload)
    with pytest.raises(PayloadError):
        Signer.for_bot("123:token", "a secret").read(payload)
    with pytest.raises(PayloadError):
        signer.read(payload.replace(".10000.", ".1.", 1))
    assert signer.make("pack", "a", 1, 1, 0) != signer.make("pack", "a", 1, 1, 0)  # nonce
