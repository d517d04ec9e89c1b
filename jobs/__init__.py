"""Jobs: job specs, the runner, the store, the REST API and its client."""
