"""Transports between bundles and the server: the interfaces here, the in-process transport, the wire format, the
framed connection and the bundle's TCP connector in their modules (the server's bus listener is
:mod:`evento.server.bus`)."""

from evento.transport.base import BundleEndpoint, BundlePeer, Connector, ServerEndpoint, ServerLink

__all__ = ["BundleEndpoint", "BundlePeer", "Connector", "ServerEndpoint", "ServerLink"]
