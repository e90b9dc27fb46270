"""Reading the system's state: the one place that turns Redis keys and contracts into typed views.

The CLI tools, the report and the HTTP API read through here, so they agree, and a
change of the keyspace is ported in one place. :mod:`~worker.queries.plan` runs a
query on a blocking or an asyncio Redis client, :mod:`~worker.queries.state` holds
the queries, :mod:`~worker.queries.views` the pydantic views they return and
:mod:`~worker.queries.incidents` folds drift alerts into incidents.
"""
