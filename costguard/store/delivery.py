"""The delivery side of the state store: the outbox, planned/sent messages, the ledger and
per-receiver state. Each method is one transaction; ``record_sent`` commits the ledger rows of a
send right after it, before the next send starts."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update

from ..notify.dedup import Told
from ..notify.model import Message, Notification
from .bulk import insert_rows, select_rows
from .schema import ledger, messages, outbox, receiver_state
from .store import Store
from .types import ensure_utc

_CHUNK = 500


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


#: a run of consecutive ids at least this long is selected with one BETWEEN, not an IN list
_RUN = 32


def _id_filters(col: Any, ids: Collection[int]) -> Iterable[ColumnElement[bool]]:
    """WHERE clauses that together select exactly ``ids`` of the integer column ``col``: a
    consecutive run (a cycle's outbox ids are) as ``BETWEEN``, the rest as ``IN`` lists of
    :data:`_CHUNK`. 10,000 ids as IN lists cost ~0.25 s of statement building and binding."""
    loose: list[int] = []
    values = sorted(set(ids))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i + 1 >= _RUN:
            yield col.between(values[i], values[j])
        else:
            loose.extend(values[i : j + 1])
        i = j + 1
    for chunk in _chunks(loose):
        yield col.in_(chunk)


def _notification(r: Mapping[str, Any]) -> Notification:
    return Notification(r["id"], r["fingerprint"], r["event"], r["created_at"], r["finding"], r["detail"])


class DeliveryStore:
    """Outbox, messages, ledger and receiver state over a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- outbox ------------------------------------------------------------------------------

    def pending(self) -> list[Notification]:
        """Notifications not yet settled for every receiver they were routed to, oldest first.
        The payloads the store's last reconcile just wrote are taken as it encoded them
        (``Store.written_notifications``); the others are read and decoded."""
        c = outbox.c
        with self.store.transaction() as conn:
            heads = [(h["id"], h["fingerprint"], h["event"], h["created_at"])
                     for h in select_rows(conn, [c.id, c.fingerprint, c.event, c.created_at], c.done_at.is_(None), c.id)]
            have = self.store.written_notifications([h[0] for h in heads])
            rest = [h[0] for h in heads if h[0] not in have]
            read = {}
            for where in _id_filters(c.id, rest):
                for r in conn.execute(select(c.id, c.finding, c.detail).where(where)):
                    read[r[0]] = (r[1], r[2])
        out = []
        for id_, fp, event, created_at in heads:
            finding, detail = have[id_] if id_ in have else read[id_]
            out.append(Notification(id_, fp, event, created_at, finding, detail))
        return out

    def notifications(self, ids: Collection[int]) -> dict[int, Notification]:
        out: dict[int, Notification] = {}
        with self.store.transaction() as conn:
            for where in _id_filters(outbox.c.id, ids):
                for r in conn.execute(select(outbox).where(where)).mappings():
                    out[r["id"]] = _notification(r)
        return out

    def mark_done(self, ids: Collection[int], at: datetime) -> None:
        at = ensure_utc(at, "at")
        with self.store.transaction(write=True) as conn:
            for where in _id_filters(outbox.c.id, ids):
                conn.execute(update(outbox).where(where).values(done_at=at))
        self.store.forget_notifications(ids)

    # ---- ledger ------------------------------------------------------------------------------

    def settled(self, ids: Collection[int]) -> set[tuple[int, str]]:
        """(notification id, receiver) pairs already in the ledger."""
        out: set[tuple[int, str]] = set()
        with self.store.transaction() as conn:
            for where in _id_filters(ledger.c.notification_id, ids):
                q = select(ledger.c.notification_id, ledger.c.receiver).where(where)
                out.update((n, r) for n, r in conn.execute(q))
        return out

    def told(self, fingerprints: Collection[str]) -> dict[tuple[str, str], Told]:
        """The last event actually sent per (receiver, fingerprint)."""
        out: dict[tuple[str, str], Told] = {}
        with self.store.transaction() as conn:
            for chunk in _chunks(sorted(fingerprints)):
                q = (select(ledger.c.receiver, ledger.c.fingerprint, ledger.c.event, ledger.c.at)
                     .where(ledger.c.fingerprint.in_(chunk) & (ledger.c.outcome == "sent"))
                     .order_by(ledger.c.id))
                for r in conn.execute(q).mappings():
                    out[(r["receiver"], r["fingerprint"])] = Told(r["event"], r["at"])
        return out

    def settle(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Ledger rows that involve no send (muted, suppressed), in one transaction."""
        if rows:
            with self.store.transaction(write=True) as conn:
                insert_rows(conn, ledger, rows)

    def ledger_entries(self, *, fingerprint: str | None = None, receiver: str | None = None) -> list[dict]:
        q = select(ledger).order_by(ledger.c.id)
        if fingerprint is not None:
            q = q.where(ledger.c.fingerprint == fingerprint)
        if receiver is not None:
            q = q.where(ledger.c.receiver == receiver)
        with self.store.transaction() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # ---- messages ----------------------------------------------------------------------------

    def plan(self, message: Message, *, run_id: str | None, at: datetime) -> None:
        """Commit a message before sending it, so a resend after a crash is the same message."""
        row = {
            "message_id": message.message_id, "receiver": message.receiver, "group_key": message.group_key,
            "group_labels": dict(message.group), "items": [i.stored() for i in message.items],
            "status": "planned", "attempts": 0, "last_error": None, "run_id": run_id,
            "planned_at": ensure_utc(at, "at"), "sent_at": None,
        }  # fmt: skip
        with self.store.transaction(write=True) as conn:
            exists = conn.execute(select(messages.c.message_id).where(messages.c.message_id == message.message_id)).first()
            if exists is None:
                conn.execute(insert(messages).values(**row))

    def planned(self) -> list[dict]:
        q = select(messages).where(messages.c.status == "planned").order_by(messages.c.planned_at, messages.c.message_id)
        with self.store.transaction() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def in_flight(self) -> set[tuple[int, str]]:
        """(notification id, receiver) pairs carried by planned (unsent) messages."""
        out: set[tuple[int, str]] = set()
        for m in self.planned():
            for item in m["items"]:
                out.update((n, m["receiver"]) for n in item["notification_ids"])
        return out

    def drop(self, message_id: str) -> None:
        """Forget a planned message (its receiver is gone from the config)."""
        with self.store.transaction(write=True) as conn:
            conn.execute(delete(messages).where((messages.c.message_id == message_id) & (messages.c.status == "planned")))

    def record_sent(self, message: Message, *, state: Mapping[str, Any] | None, run_id: str | None, at: datetime,
                    outcome: str = "sent") -> None:
        """The send succeeded: ledger rows for every notification it carried, the message marked
        sent and the receiver's state for the group kept, in one transaction."""
        at = ensure_utc(at, "at")
        rows = [
            {"notification_id": n, "receiver": message.receiver, "fingerprint": item.fingerprint,
             "event": item.event, "outcome": outcome, "message_id": message.message_id, "reason": None,
             "run_id": run_id, "at": at}
            for item in message.items for n in item.notification_ids
        ]  # fmt: skip
        with self.store.transaction(write=True) as conn:
            have = set()
            for where in _id_filters(ledger.c.notification_id, {r["notification_id"] for r in rows}):
                q = select(ledger.c.notification_id).where(where & (ledger.c.receiver == message.receiver))
                have.update(conn.execute(q).scalars())
            insert_rows(conn, ledger, [r for r in rows if r["notification_id"] not in have])
            conn.execute(update(messages).where(messages.c.message_id == message.message_id)
                         .values(status="sent", sent_at=at, attempts=messages.c.attempts + 1, last_error=None))
            if state is not None:
                key = and_(receiver_state.c.receiver == message.receiver, receiver_state.c.group_key == message.group_key)
                conn.execute(delete(receiver_state).where(key))
                conn.execute(insert(receiver_state).values(receiver=message.receiver, group_key=message.group_key,
                                                           data=dict(state), updated_at=at))

    def record_failure(self, message_id: str, error: str) -> None:
        with self.store.transaction(write=True) as conn:
            conn.execute(update(messages).where(messages.c.message_id == message_id)
                         .values(attempts=messages.c.attempts + 1, last_error=error))

    # ---- receiver state ----------------------------------------------------------------------

    def keep_state(self, receiver: str, group_key: str, data: Mapping[str, Any], at: datetime) -> None:
        """Record what a receiver keeps for a group key, replacing what was there (the weekly
        digest's "sent to this receiver" record, ``digest:<audience>:<week>``)."""
        key = and_(receiver_state.c.receiver == receiver, receiver_state.c.group_key == group_key)
        with self.store.transaction(write=True) as conn:
            conn.execute(delete(receiver_state).where(key))
            conn.execute(insert(receiver_state).values(receiver=receiver, group_key=group_key, data=dict(data),
                                                       updated_at=ensure_utc(at, "at")))

    def state(self, receiver: str, group_key: str) -> dict | None:
        key = and_(receiver_state.c.receiver == receiver, receiver_state.c.group_key == group_key)
        with self.store.transaction() as conn:
            row = conn.execute(select(receiver_state.c.data).where(key)).first()
        return dict(row[0]) if row else None

    # ---- the findings "delivery" column ------------------------------------------------------

    def summary(self, fingerprints: Collection[str]) -> dict[str, dict[str, Any]]:
        """Per fingerprint: per receiver, the last ledger outcome (sent/muted/suppressed, event,
        at) or ``pending`` (with the last error of its planned message), and an overall word."""
        fps = sorted(fingerprints)
        per: dict[str, dict[str, dict[str, Any]]] = {fp: {} for fp in fps}
        with self.store.transaction() as conn:
            for chunk in _chunks(fps):
                q = select(ledger).where(ledger.c.fingerprint.in_(chunk)).order_by(ledger.c.id)
                for r in conn.execute(q).mappings():
                    per[r["fingerprint"]][r["receiver"]] = {"outcome": r["outcome"], "event": r["event"], "at": r["at"]}
            pending: dict[str, set[int]] = {}
            for chunk in _chunks(fps):
                q = select(outbox.c.id, outbox.c.fingerprint).where(outbox.c.fingerprint.in_(chunk) & outbox.c.done_at.is_(None))
                for nid, fp in conn.execute(q):
                    pending.setdefault(fp, set()).add(nid)
            if pending:
                for m in conn.execute(select(messages).where(messages.c.status == "planned")).mappings():
                    for item in m["items"]:
                        ids = set(item["notification_ids"])
                        if item["fingerprint"] in pending and ids & pending[item["fingerprint"]]:
                            per[item["fingerprint"]][m["receiver"]] = {
                                "outcome": "failed" if m["last_error"] else "pending", "event": item["event"],
                                "error": m["last_error"], "attempts": m["attempts"]}
        out: dict[str, dict[str, Any]] = {}
        for fp in fps:
            receivers = per[fp]
            outcomes = {v["outcome"] for v in receivers.values()}
            if "failed" in outcomes:
                word = "failed"
            elif "pending" in outcomes or fp in pending:
                word = "pending"
            elif "sent" in outcomes:
                word = "sent"
            elif outcomes:
                word = sorted(outcomes)[0]
            else:
                word = "none"
            out[fp] = {"state": word, "receivers": receivers}
        return out

    def count_pending(self) -> int:
        with self.store.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox).where(outbox.c.done_at.is_(None))).scalar() or 0)
