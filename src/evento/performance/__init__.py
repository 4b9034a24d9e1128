"""The performance model of an Evento application (reference §5): flows of stations and their evaluation."""
