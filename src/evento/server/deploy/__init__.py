"""Running the application's bundles from the server: their deployable description, the deploy scripts that
start instances, and the supervisor that keeps each bundle between its minimum and maximum."""

from evento.server.deploy.spec import BundleSpec

__all__ = ["BundleSpec"]
