"""What the server knows to start a bundle: its deployable description (:class:`BundleSpec`).

A project declares it in its ``pyproject.toml`` (``[[tool.evento.bundle]]``, read by ``evento publish`` and
``evento update-version``); an admin changes the operating part (instances, autorun, environment) with
``PUT /api/bundle/{id}``. The deploy script receives it as JSON (camelCase, like the API), so a script in any
language reads the same fields.
"""

from __future__ import annotations

import msgspec

__all__ = ["BundleSpec", "spec_decoder", "spec_json"]


class BundleSpec(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A bundle as the deploy script starts it.

    ``entry_point`` is ``module:object`` (a :class:`~evento.Bundle` or a function returning one), as
    ``evento bundle run`` takes it; ``environment`` is added to the instance's environment and
    ``interpreter_options`` go before ``-m evento`` on the interpreter's command line. The server keeps between
    ``min_instances`` and ``max_instances`` running, and starts the minimum by itself when ``autorun``.
    """

    bundle_id: str
    version: str = "1"
    entry_point: str
    description: str | None = None
    repository_url: str | None = None
    environment: dict[str, str] = {}
    interpreter_options: list[str] = []
    min_instances: int = 0
    max_instances: int = 1
    autorun: bool = False
    #: The wheel's file name when an artifact was published for this version (None: importable as installed).
    artifact: str | None = None

    def __post_init__(self) -> None:
        if not self.bundle_id.strip():
            raise ValueError("a bundle needs a non-blank id")
        module, _, obj = self.entry_point.partition(":")
        if not module or not obj:
            raise ValueError(f"entry point must be module:object, got {self.entry_point!r}")
        if self.min_instances < 0 or self.max_instances < max(1, self.min_instances):
            raise ValueError(
                f"need 0 <= min instances <= max instances and max >= 1, got {self.min_instances}..{self.max_instances}"
            )


spec_decoder = msgspec.json.Decoder(BundleSpec)


def spec_json(spec: BundleSpec) -> str:
    """``spec`` as the JSON a deploy script is given."""
    return msgspec.json.encode(spec).decode()
