"""quern's Python SDK and command line: ``quern.client.Client`` (blocking), ``quern.aio.AsyncClient`` (asyncio),
their errors (``quern.errors``) and resources (``quern.models``), and the ``quern`` command (``quern.cli``)."""
