"""``python -m wesog_async`` runs the command-line interface."""

from wesog_async.cli import main

raise SystemExit(main())
