"""The Evento error hierarchy.

Handler errors cross process boundaries as a :class:`Failure` (class path + message) and are raised again at the
caller as the same class when the caller knows it, so ``except TodoListFull:`` works across the network.
"""

from __future__ import annotations

import sys
import traceback

import msgspec


class EventoError(Exception):
    """Base of every error Evento raises."""


class InvalidPayloadError(EventoError, ValueError):
    """A payload did not match its declared type; the message names the field."""


class InvalidEventError(EventoError):
    """A bundle answered a command with an event the server does not store: its type is not one the bundle
    declared, or it does not decode (not a JSON object matching the JSON Schema the bundle registered for the
    type). The command failed and nothing was stored."""


class UndecodableEventError(InvalidPayloadError):
    """A stored event does not decode as the consuming handler's payload class. Retrying cannot fix it, so
    consumers give it at most ``ConsumerSettings.decode_retries`` retries before the dead event queue."""


class DataInUseError(EventoError):
    """A data directory or database file is held by another process; the message names it (pid and command)."""


class RegistrationError(EventoError):
    """A component or handler is declared wrongly; raised when the bundle is built."""


class CapabilityError(RegistrationError):
    """A handler uses a gateway its component kind may not use (RECQ capability table)."""


class NoHandlerError(EventoError):
    """No enabled instance handles this payload type."""


class HandlerNotFoundError(EventoError):
    """A component received a payload it has no handler for."""


class AggregateNotInitializedError(EventoError):
    """A non-init command reached an aggregate that has no events."""


class AggregateInitializedError(EventoError):
    """An init command reached an aggregate that already exists."""


class AggregateDeletedError(EventoError):
    """A command reached an aggregate that was deleted."""


class RequestTimeoutError(EventoError, TimeoutError):
    """The request's deadline passed. Its outcome is indeterminate: the work may still complete."""


class LockTimeoutError(EventoError, TimeoutError):
    """A command waited its whole deadline for its lock id (other commands held it); it did not run."""


class TooManyPendingRequestsError(EventoError):
    """The caller has too many requests in flight; nothing was sent, retrying is safe."""


class ConnectionLostError(EventoError, ConnectionError):
    """The connection to a peer closed while a request waited for its answer (the peer may have left)."""


class TransientConsumerError(EventoError):
    """Raise from an event handler to have the event redelivered later, without advancing the checkpoint."""


class ConcurrentCheckpointError(EventoError):
    """A consumer checkpoint was committed by someone else in between (optimistic version mismatch)."""


class ConsumerStoreError(EventoError):
    """The consumer state store's database refused or failed a statement (the driver's error is the cause)."""


class ConsumerStoreUnavailableError(ConsumerStoreError, ConnectionError):
    """The consumer state store's database is unreachable, dropped the connection or is busy: try again later.

    A :class:`ConnectionError`, so consumers treat it as transient. The interrupted call's outcome is unknown;
    retrying is safe because checkpoint commits are versioned and the other writes are idempotent.
    """


class EventStoreError(EventoError):
    """The event store failed; nothing of the failing batch was stored (the driver's error is the cause)."""


class EventStoreUnavailableError(EventStoreError, ConnectionError):
    """The event store's database is unreachable, dropped the connection, has no connection free in time or is
    locked by another process: try again later.

    A :class:`ConnectionError`, so consumers and callers treat it as transient; what was refused outright (a bad
    statement, a full disk) stays a plain :class:`EventStoreError`.
    """


class RemoteHandlerError(EventoError):
    """A handler failed with an error class the caller does not know."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.remote_message = message


class Failure(msgspec.Struct, frozen=True):
    """A handler error as it travels: the class path and the message."""

    error_type: str
    message: str
    trace: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        kind = type(exc)
        message = exc.remote_message if isinstance(exc, RemoteHandlerError) else str(exc)
        error_type = exc.error_type if isinstance(exc, RemoteHandlerError) else f"{kind.__module__}:{kind.__qualname__}"
        return cls(error_type, message, "".join(traceback.format_exception(exc, limit=8)))

    def to_exception(self) -> Exception:
        """The error as the caller should see it: the original class if it is loaded here."""
        cls = _resolve_error_class(self.error_type)
        if cls is not None:
            try:
                exc = cls(self.message)
            except Exception:  # the class wants other constructor arguments
                exc = None
            if isinstance(exc, Exception):
                return exc
        return RemoteHandlerError(self.error_type, self.message)

    @property
    def short_type(self) -> str:
        return self.error_type.rpartition(":")[2].rpartition(".")[2]


def _resolve_error_class(path: str) -> type[Exception] | None:
    # Only modules already imported by this process are consulted: a failure never triggers an import.
    module_name, _, qualname = path.partition(":")
    obj: object = sys.modules.get(module_name)
    if obj is None:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None
