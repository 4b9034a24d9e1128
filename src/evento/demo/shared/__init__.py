"""Pieces the order-inventory and flight examples share: domain errors, the customers service, read models over
the consumer store's database, the HTTP edge's input rules, and how a system's services become bundles."""
