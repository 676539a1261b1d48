#!/usr/bin/env python3
"""Clara's entry point. See ``python discord_bot.py --help``."""

from __future__ import annotations

import sys

from clara_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
