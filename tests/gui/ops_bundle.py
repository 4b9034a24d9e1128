"""The bundle the GUI's operations test deploys to an ``evento server`` process, which starts its instances itself
(``evento bundle run tests.gui.ops_bundle:build``): one service, no consumer and no autoscaling protocol, so its
instances come and go only as the test's Spawn and Kill ask."""

from __future__ import annotations

from evento import Bundle, ServiceCommand, command_handler, service


class Ping(ServiceCommand):
    """A command the bundle answers (a bundle declares at least something to handle)."""

    n: int


@service()
class Pinger:
    """Answers pings."""

    @command_handler
    def ping(self, command: Ping) -> int:
        return command.n


def build() -> Bundle:
    """The bundle, as the server's local spawner runs it."""
    return Bundle("ops", components=[Pinger], description="Started and stopped by the GUI's operations test")
