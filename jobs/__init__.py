"""Jobs: the CLI, the Dask cluster factory, job specs, the runner, the store and the REST API."""
