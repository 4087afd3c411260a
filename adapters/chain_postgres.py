"""The chain recorder for PostgreSQL (adapters/chain_recorder.py has the chain's logic):
a module of its own, so that the embedded default never loads psycopg."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg.sql import SQL, Identifier

from adapters.chain_recorder import ChainMixin
from domain.chain import Link


class PostgresChainRecorder(ChainMixin, PostgresProcessRecorder):
    """PostgreSQL: the chain written after the insert, under eventsourcing's table lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements += [SQL(s) for s in self._chain_table_sql()]  # type: ignore[misc]

    def _q(self, sql: str) -> Any:
        return SQL(sql.replace("?", "%s"))  # type: ignore[arg-type]

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        self._write_chain(curs, stored_events, list(ids or []))
        return ids

    def _events_table(self) -> str:
        return (
            SQL("{0}.{1}")
            .format(  # type: ignore[return-value]
                Identifier(self.datastore.schema), Identifier(self.events_table_name)
            )
            .as_string(None)
        )

    def select_histories(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """Each aggregate's stored events after the version given (0: all), in one query:
        what a batch of commands will read, instead of a query per aggregate."""
        if not after:
            return {}
        statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM {0}.{1} e"
            " JOIN unnest(%s::{2}[], %s::bigint[]) AS w (id, after)"
            " ON e.originator_id = w.id AND e.originator_version > w.after"
            " ORDER BY e.originator_id, e.originator_version"
        ).format(
            Identifier(self.datastore.schema),
            Identifier(self.events_table_name),
            SQL(self.datastore.originator_id_type),  # type: ignore[arg-type]
        )
        ids = list(after) if self.datastore.originator_id_type == "uuid" else list(map(str, after))
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (ids, list(after.values())))
            for row in curs.fetchall():
                found.setdefault(UUID(str(row["originator_id"])), []).append(
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                )
        return found

    def _older_events_sql(self) -> str:
        return f"SELECT 1 FROM {self._events_table()} WHERE notification_id < ? LIMIT 1"

    def _events_page_sql(self) -> str:
        return (
            "SELECT notification_id, originator_id, originator_version, topic, state FROM"
            f" {self._events_table()} WHERE notification_id > ? ORDER BY notification_id LIMIT ?"
        )

    def _fetch(self, c: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        c.execute(self._q(sql), tuple(params))
        return [tuple(r.values()) if isinstance(r, dict) else r for r in c.fetchall()]

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            return self._fetch(c, sql, params)

    def seal(self) -> tuple[int, Link | None]:
        with self.datastore.transaction(commit=True) as c:
            self._lock_table(c)  # no insert can slip between the chain's rows
            count, last = self._seal(c)
        self._sealed = True
        return count, last
