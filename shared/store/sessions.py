"""Browser sessions of the web UI: a secret cookie's digest, whose session it is, its CSRF token and its expiry.

Only the SHA-256 of the cookie's secret is stored, so a read of the collection signs nobody in;
MongoDB's TTL monitor removes expired sessions, and reads refuse them before it gets there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shared.models import utcnow
from shared.store.database import Database, translated


def session_digest(secret: str) -> str:
    """What is stored for a session cookie's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser: the user, the CSRF token its forms carry, and when it ends."""

    digest: str
    user_id: str
    csrf: str
    created: datetime
    expires: datetime


class SessionStore:
    """Web UI sessions, by the digest of their cookie's secret."""

    def __init__(self, database: Database) -> None:
        self._sessions = database.collection("ui_sessions")

    async def ensure_indexes(self) -> None:
        """Create the index that removes sessions once they expire (idempotent)."""
        with translated("create indexes"):
            await self._sessions.create_index("expires", expireAfterSeconds=0)

    async def insert_session(self, session: BrowserSession) -> None:
        """Record a new session."""
        doc = {
            "_id": session.digest,
            "user_id": session.user_id,
            "csrf": session.csrf,
            "created": session.created,
            "expires": session.expires,
        }
        with translated("ui session"):
            await self._sessions.insert_one(doc)

    async def find_session(self, digest: str) -> BrowserSession | None:
        """The unexpired session with this digest, if any."""
        with translated("ui session"):
            doc = await self._sessions.find_one({"_id": digest, "expires": {"$gt": utcnow()}})
        if doc is None:
            return None
        return BrowserSession(
            digest=doc["_id"], user_id=doc["user_id"], csrf=doc["csrf"], created=doc["created"], expires=doc["expires"]
        )

    async def delete_session(self, digest: str) -> None:
        """End a session (ending one already gone changes nothing)."""
        with translated("ui session"):
            await self._sessions.delete_one({"_id": digest})
