"""The MongoDB stores: one per aggregate, all over one ``Database`` (one ``AsyncMongoClient``), bundled as ``Stores``.

Each store keeps its indexes beside its queries; ``Stores.prepare`` creates them all and runs the
migrations. Why the queries avoid a top-level ``$or`` and findAndModify: ``shared.store.database``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings
from shared.store.accounts import AccountStore
from shared.store.apps import AppStore
from shared.store.archives import ArchiveStore
from shared.store.batches import BatchStore
from shared.store.database import Database
from shared.store.datasets import DatasetStore
from shared.store.dispatch import DispatchStore
from shared.store.events import DEFAULT_RETENTION_SECONDS, EventStore
from shared.store.files import FileStore
from shared.store.idempotency import IdempotencyStore
from shared.store.jobs import JobStore
from shared.store.migrations import migrate
from shared.store.queues import QueueStore
from shared.store.sessions import SessionStore
from shared.store.usage import UsageStore
from shared.store.webhooks import WebhookStore
from shared.store.workers import WorkerStore


@dataclass(frozen=True)
class Stores:
    """Every store, sharing one database and its client."""

    database: Database
    accounts: AccountStore
    files: FileStore
    datasets: DatasetStore
    apps: AppStore
    jobs: JobStore
    events: EventStore
    dispatch: DispatchStore
    workers: WorkerStore
    queues: QueueStore
    batches: BatchStore
    idempotency: IdempotencyStore
    archives: ArchiveStore
    webhooks: WebhookStore
    sessions: SessionStore
    usage: UsageStore

    @classmethod
    def over(cls, database: Database) -> Stores:
        """The stores of ``database``."""
        return cls(
            database=database,
            accounts=AccountStore(database),
            files=FileStore(database),
            datasets=DatasetStore(database),
            apps=AppStore(database),
            jobs=JobStore(database),
            events=EventStore(database),
            dispatch=DispatchStore(database),
            workers=WorkerStore(database),
            queues=QueueStore(database),
            batches=BatchStore(database),
            idempotency=IdempotencyStore(database),
            archives=ArchiveStore(database),
            webhooks=WebhookStore(database),
            sessions=SessionStore(database),
            usage=UsageStore(database),
        )

    @classmethod
    def connect(cls, settings: Settings, *, appname: str) -> Stores:
        """The stores of the configured database, on a client for the running event loop; it connects lazily."""
        return cls.over(Database.connect(settings, appname=appname))

    async def close(self) -> None:
        """Close the client's connections."""
        await self.database.close()

    async def ping(self) -> None:
        """Raise Unavailable unless the server answers."""
        await self.database.ping()

    async def prepare(self, *, event_retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        """Create every store's indexes and run the migrations not run yet (idempotent); events expire after then."""
        await self.events.ensure_indexes(retention_seconds=event_retention_seconds)
        for store in (
            self.accounts,
            self.files,
            self.datasets,
            self.apps,
            self.jobs,
            self.dispatch,
            self.queues,
            self.batches,
            self.idempotency,
            self.archives,
            self.webhooks,
            self.sessions,
        ):
            await store.ensure_indexes()
        await migrate(self.database)


__all__ = ["Stores"]
