"""``python -m evento.cli``: the ``evento`` command."""

from __future__ import annotations

from evento.cli.app import main

raise SystemExit(main())
