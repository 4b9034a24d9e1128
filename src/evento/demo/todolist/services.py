"""External systems behind services: the ERP and the notification gateway (simulated latency)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from evento import command_handler, service
from evento.demo.todolist.payloads import (
    ErpUserActivityRegisterCommand,
    ErpUserActivityRegisteredEvent,
    NotificationSendCommand,
)

log = logging.getLogger(__name__)


@dataclass
class ServiceSettings:
    """Simulated latency of the external systems, in seconds (``evento demo --service-delay``)."""

    delay: float = 1.0
    sent_notifications: list[str] = field(default_factory=list)


@service()
class ErpService:
    """Registers contributions with the ERP: ``delay`` seconds per contributor."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    @command_handler
    async def register(self, command: ErpUserActivityRegisterCommand) -> ErpUserActivityRegisteredEvent:
        await asyncio.sleep(self.settings.delay * max(1, len(command.contributions)))
        return ErpUserActivityRegisteredEvent(
            resource_type=command.resource_type,
            resource_identifier=command.resource_identifier,
            contributions=command.contributions,
        )


@service()
class NotificationService:
    """Sends notifications; produces no event."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    @command_handler
    async def send(self, command: NotificationSendCommand) -> None:
        await asyncio.sleep(self.settings.delay)
        self.settings.sent_notifications.append(command.body)
        log.info("notification sent: %s", command.body)
