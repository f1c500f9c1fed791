"""Developer tooling: the demo and the dev-UI launcher; nothing here runs in production."""
