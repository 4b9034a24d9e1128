"""The bundle runtime: hosting components, running handlers and consumer engines."""

from evento.bundle.autoscaling import AutoscalingProtocol, ThreadCountAutoscalingProtocol
from evento.bundle.bundle import Bundle
from evento.bundle.consumers import ConsumerEngine, ConsumerSettings, ConsumerStatus
from evento.bundle.outbox import BundleOutbox
from evento.bundle.tracing import MessageHandlerInterceptor, TracingAgent

__all__ = [
    "AutoscalingProtocol",
    "Bundle",
    "BundleOutbox",
    "ConsumerEngine",
    "ConsumerSettings",
    "ConsumerStatus",
    "MessageHandlerInterceptor",
    "ThreadCountAutoscalingProtocol",
    "TracingAgent",
]
