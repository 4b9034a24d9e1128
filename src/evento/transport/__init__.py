"""Transports between bundles and the server: the interfaces here, in-process and TCP in their modules."""

from evento.transport.base import BundleEndpoint, BundlePeer, Connector, ServerLink

__all__ = ["BundleEndpoint", "BundlePeer", "Connector", "ServerLink"]
