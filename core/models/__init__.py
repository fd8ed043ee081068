"""Model builders, one family per module; each registers its specs with core.registry."""
