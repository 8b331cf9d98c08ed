"""The HTTP API's routes, one module-level `router` per concern; `producer.api` includes them."""
