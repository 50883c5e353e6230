"""`python -m service`: serve MessageLogService with settings from the environment."""

from __future__ import annotations

import asyncio
import sys

from service.config import Settings, SettingsError
from service.logging_setup import configure_logging
from service.server import StartupError, serve

# Every setup that cannot work (a malformed setting, an unreadable certificate, an unreachable
# database, a taken port) exits with this one code, after one line on stderr.
EXIT_CANNOT_START = 1


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"messagelog: invalid setting: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        print(f"messagelog: cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0


if __name__ == "__main__":
    sys.exit(main())
