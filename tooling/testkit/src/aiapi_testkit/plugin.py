"""pytest plugin: fixtures that run real NATS, PostgreSQL and aiapi services (see fixtures below)."""
