"""The gateway's API surfaces, each a set of endpoints mounted with its own public paths, errors and OpenAPI document.

``native`` is quern's own API (``/v1``). Facades that speak another standard over the same
domain operations (GA4GH TES at ``/ga4gh/tes/v1``, OGC API - Processes, a web UI) are further
packages beside it, added to ``create_app``'s routes; surfaces never import each other.
"""
