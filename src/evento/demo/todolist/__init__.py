"""The TodoList tutorial of the original Evento, ported: payloads, the seven component kinds, an HTTP API."""
