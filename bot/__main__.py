"""Command line: ``python -m bot`` runs the bot; ``python -m bot check`` checks the set-up."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "check"],
        help="run the bot (default), or check settings, catalog, Redis, Telegram, providers",
    )
    args = parser.parse_args(argv)
    # No collections while the start imports and builds what lives as long as the process
    # (aiogram's pydantic models: the collections that walked them while they were
    # imported cost about 0.3 s of CPU); bot.app.tune_gc freezes it all, then turns the
    # collector on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _command(args.command, collecting)
    finally:
        if collecting:
            gc.enable()


def _command(command: str, collecting: bool) -> int:
    from pydantic import ValidationError

    from bot.settings import Settings, environ_with_dotenv

    try:
        settings = Settings()  # read from the environment
    except ValidationError as exc:
        print(_settings_problems(exc), file=sys.stderr)
        return 2
    environ = environ_with_dotenv()
    if command == "check":
        from bot.check import run_check

        if collecting:
            gc.enable()
        return asyncio.run(run_check(settings, environ))
    from bot.app import run

    return asyncio.run(run(settings, environ))


def _settings_problems(exc: ValidationError) -> str:
    lines = ["the settings are not valid:"]
    for error in exc.errors():
        name = "_".join(str(p) for p in error["loc"]).upper() or "settings"
        message = "is required" if error["type"] == "missing" else error["msg"]
        lines.append(f"  {name}: {message}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
