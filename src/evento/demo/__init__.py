"""Demo systems shipped with Evento: the TodoList tutorial."""
