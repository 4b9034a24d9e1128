"""The greeter bundle: one aggregate answering ``SampleGreet`` with ``SampleGreeted``.

Payload names are routing keys, global to a process: the suite runs other examples with a ``Greeted`` of their
own, so the sample's names are its own."""

from __future__ import annotations

from evento import Bundle, DomainCommand, DomainEvent, aggregate, aggregate_command_handler


class SampleGreet(DomainCommand):
    name: str

    @property
    def aggregate_id(self) -> str:
        return f"greeting-{self.name}"


class SampleGreeted(DomainEvent):
    name: str
    text: str


@aggregate()
class Greeting:
    @aggregate_command_handler(init=True)
    def greet(self, command: SampleGreet) -> SampleGreeted:
        return SampleGreeted(name=command.name, text=f"hello {command.name}")


def build() -> Bundle:
    """The greeter, as ``evento bundle run evento_publish_sample.bundle:build`` runs it."""
    return Bundle(
        "greeter",
        version=1,
        components=[Greeting],
        description="Greets by name",
        repository_url="https://example.org/greeter/blob/main/",
        line_prefix="#L",
    )
