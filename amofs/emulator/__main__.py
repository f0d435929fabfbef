"""``python -m amofs.emulator``: the same as ``amofs emulator``."""

from amofs.emulator.server import main

raise SystemExit(main())
