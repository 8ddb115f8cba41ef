"""``python -m modelmon``: the same command as ``modelmon``."""

from modelmon.cli import main

raise SystemExit(main())
