"""What the tests share, in one place: test modules import from here, never from one another.

``clients`` (logged-in clients, problem checks, uploads, apps, jobs, waits), ``datasets`` (bundles
and datasets), ``records`` (records to store, a database of one's own), ``stacks`` (the test
stacks' settings and teardown), and the stand-ins some tests run: ``receiver`` (a webhook
receiver), ``docker_stand_in`` (a ``docker`` command).
"""
