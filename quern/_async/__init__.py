"""The SDK's single source, for asyncio: ``quern._sync`` is generated from these modules by scripts/unasync.py."""
