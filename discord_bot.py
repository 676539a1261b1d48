#!/usr/bin/env python3
"""Clara's entry point. See ``python discord_bot.py --help``."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    try:
        # Imported here so a Ctrl-C during the imports ends quietly too.
        from clara_core.cli import main

        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
