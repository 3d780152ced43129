"""The blocking SDK, generated module by module from ``quern._async`` by scripts/unasync.py: edit those."""
