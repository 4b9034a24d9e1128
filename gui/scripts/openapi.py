"""Print the server's OpenAPI document (JSON) without starting it: the GUI's API types are generated from it
(`npm run api-types`), so they follow the API the Python code defines."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from evento.event_stores import SQLiteEventStore
from evento.server import EventoServer
from evento.server.api import create_api


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = EventoServer(SQLiteEventStore(Path(directory) / "events.db"), server_id="openapi")
        json.dump(create_api(server).openapi(), sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
