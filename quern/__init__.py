"""quern client: the command line and (later) the Python SDK."""
