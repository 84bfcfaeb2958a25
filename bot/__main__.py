"""Command line: ``python -m bot`` runs the bot; ``python -m bot check`` checks the set-up."""

from __future__ import annotations

import argparse
import asyncio
import sys

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

    from bot.settings import Settings, environ_with_dotenv

    try:
        settings = Settings()  # read from the environment
    except ValidationError as exc:
        print(_settings_problems(exc), file=sys.stderr)
        return 2
    environ = environ_with_dotenv()
    if args.command == "check":
        from bot.check import run_check

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
