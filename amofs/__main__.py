"""``python -m amofs`` runs the command line."""

from amofs.cli import main

raise SystemExit(main())
