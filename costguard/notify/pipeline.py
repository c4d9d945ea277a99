"""The delivery stage: outbox → route → mute/dedup → group → plan → send (retry) → ledger.

Shaped like Alertmanager's notification pipeline, with its weak spots removed: stages pass a
typed value (no context bags), and the log of what was sent is a database row committed right
after each send (not a snapshot), so a crash at any point never loses a notification and a
resend carries the same message id.

    1  resend     messages planned by an earlier, interrupted run are sent first, as they were
                  (same id, same content)
    2  route      every pending outbox notification → its receivers (routes, owner's team, everyone)
    3  decide     per receiver × finding: mute (exceptions) and the pure dedup decision
                  (``dedup.needs_update``) over the ledger; "nothing to tell" is settled at once
    4  group      per receiver, findings grouped by owner + group_by; one message per group
    5  plan       each message committed as "planned" before its send
    6  send       with retry (backoff, jitter, Retry-After, deadline); on success the ledger rows
                  for every notification it carries are committed before the next send; a failure
                  is recorded on the message, which stays planned for the next cycle
    7  done       an outbox row every receiver has settled is marked done

A receiver failing never stops the others. ``dry_run`` stores and sends nothing and reports what
would be sent; ``mode="shadow"`` writes each message as a JSON line to a file instead of sending.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from costguard.errors import first_line
from costguard.logs import get_logger, redact_text
from costguard.notify import payload
from costguard.notify.dedup import Reason, needs_update
from costguard.notify.errors import DeliveryError
from costguard.notify.model import Item, Message, Notification, ReceiverReport, Sent, message_id
from costguard.notify.retry import Retrier, RetryPolicy
from costguard.notify.routing import Router, group_key, group_labels
from costguard.notify.silences import Exceptions

log = get_logger("costguard.notify")


def _knows_open(told: Any) -> bool:
    """The receiver was told the finding is open (so it must hear how it ends)."""
    return told is not None and told.event != "resolved"


class ShadowFile:
    """``notify.mode: shadow``: every message becomes one JSON line in a file, nothing is sent."""

    def __init__(self, path: str | Path, clock: Callable[[], datetime]) -> None:
        self.path = Path(path)
        self.clock = clock

    def write(self, message: Message, receiver_type: str) -> Sent:
        line = {"at": self.clock(), "receiver": message.receiver, "type": receiver_type,
                "message_id": message.message_id, **payload.body(message)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(payload.dumps(line) + "\n")
            fh.flush()
        return Sent(state=None)


@dataclass
class DeliveryOutcome:
    receivers: dict[str, ReceiverReport] = field(default_factory=dict)

    @property
    def errors(self) -> dict[str, str]:
        return {n: r.error for n, r in self.receivers.items() if r.error}

    def stats(self) -> dict[str, dict[str, Any]]:
        return {n: r.to_dict() for n, r in self.receivers.items()}


class Delivery:
    """One cycle's delivery over its collaborators (built in ``app.py``)."""

    def __init__(
        self,
        *,
        store: Any,                              # costguard.store.delivery.DeliveryStore
        notifiers: Mapping[str, Any],            # name -> Notifier
        types: Mapping[str, str] | None = None,  # name -> receiver type (for the shadow file)
        router: Router,
        exceptions: Exceptions = Exceptions(),
        retry: RetryPolicy = RetryPolicy(),
        deadline_seconds: float = 600.0,
        clock: Callable[[], datetime],
        mode: str = "send",
        shadow: ShadowFile | None = None,
        out: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode == "shadow" and shadow is None:
            raise ValueError("shadow mode needs a shadow file")
        self.store = store
        self.notifiers = dict(notifiers)
        self.types = dict(types or {})
        self.router = router
        self.exceptions = exceptions
        self.retry = retry
        self.deadline_seconds = deadline_seconds
        self.clock = clock
        self.mode = mode
        self.shadow = shadow
        self.out = out
        self.sleep = sleep
        self.monotonic = monotonic

    # ---- the stage -----------------------------------------------------------------------------

    def run(self, run_id: str | None, *, dry_run: bool = False, transient: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> DeliveryOutcome:
        """Deliver what is pending. ``dry_run``: also the in-memory ``transient`` changes of a run
        that stored nothing; nothing is sent (except to the console) and nothing is stored."""
        now = self.clock()
        outcome = DeliveryOutcome({n: ReceiverReport() for n in self.notifiers})
        deadline = self.monotonic() + self.deadline_seconds
        down: dict[str, str] = {}
        if not dry_run:
            self._resend_planned(run_id, outcome, down, deadline)

        pending = list(self.store.pending()) if self.store is not None else []
        pending += [Notification(-(i + 1), f["fingerprint"], e, now, f) for i, (e, f) in enumerate(transient)]
        stored_ids = [n.id for n in pending if n.id > 0]
        skip = self.store.settled(stored_ids) if self.store is not None else set()
        # a finding with an unsent message for a receiver waits for it: its later changes must
        # not overtake it (a "resolved" before the ticket exists would be dropped as never told)
        held: set[tuple[str, str]] = set()
        for row in self.store.planned() if self.store is not None else ():
            for it in row["items"]:
                skip.update((nid, row["receiver"]) for nid in it["notification_ids"])
                held.add((row["receiver"], it["fingerprint"]))
        told = self.store.told({n.fingerprint for n in pending}) if self.store is not None else {}

        routed: dict[int, set[str]] = {}
        per: dict[tuple[str, str], tuple[Any, list[Notification]]] = {}
        for n in pending:
            targets = [t for t in self.router.targets(n.finding)
                       if self._accepts(t.receiver, n.finding) or _knows_open(told.get((t.receiver, n.fingerprint)))]
            routed[n.id] = {t.receiver for t in targets}
            for t in targets:
                if (n.id, t.receiver) in skip or (t.receiver, n.fingerprint) in held:
                    continue
                key = (t.receiver, n.fingerprint)
                if key not in per:
                    per[key] = (t, [])
                per[key][1].append(n)

        settle: list[dict[str, Any]] = []
        grouped: dict[str, dict[str, tuple[dict[str, str], list[Item]]]] = defaultdict(dict)
        for (receiver, fp), (target, ns) in per.items():
            if len(ns) > 1:
                ns.sort(key=lambda n: (n.created_at, abs(n.id)))
            finding = ns[-1].finding
            exc = self.exceptions.match(finding, now.date())
            d = needs_update([n.event for n in ns], told.get((receiver, fp)), now=now,
                             repeat_interval=target.repeat_interval, muted=exc is not None)
            rep = outcome.receivers[receiver]
            if not d.send:
                outcome_word = "muted" if d.reason is Reason.MUTED else "suppressed"
                reason = f"exception {exc.id}" if exc is not None and d.reason is Reason.MUTED else str(d.reason)
                if outcome_word == "muted":
                    rep.muted += len(ns)
                else:
                    rep.suppressed += len(ns)
                settle += [{"notification_id": n.id, "receiver": receiver, "fingerprint": fp, "event": n.event,
                            "outcome": outcome_word, "message_id": None, "reason": reason, "run_id": run_id, "at": now}
                           for n in ns if n.id > 0]
                continue
            notifier = self.notifiers[receiver]
            grouping = notifier.group_by
            if grouping is not None and target.group_by is not None and not getattr(notifier, "fixed_grouping", False):
                grouping = tuple(k for k in target.group_by if k != "owner")
            labels = group_labels(finding, grouping)
            detail = next((n.detail for n in reversed(ns) if n.detail), None)
            item = Item(fp, d.event or ns[-1].event, finding, tuple(n.id for n in ns), detail)
            gk = group_key(labels)
            grouped[receiver].setdefault(gk, (labels, []))[1].append(item)
        if settle and not dry_run:
            self.store.settle(settle)

        for receiver, notifier in self.notifiers.items():
            groups = grouped.get(receiver, {})
            msgs = [Message(receiver, gk, labels, tuple(sorted(items, key=lambda i: i.fingerprint)),
                            message_id(receiver, gk, [n for i in items for n in i.notification_ids]))
                    for gk, (labels, items) in sorted(groups.items())]
            if not msgs and getattr(notifier, "catch_all", False):
                notifier.send(Message(receiver, "all", {}, (), ""))  # the console: "nothing changed"
                continue
            for m in msgs:
                if dry_run:
                    outcome.receivers[receiver].would_send.append(m)
                    if getattr(notifier, "catch_all", False):
                        notifier.send(m)
                    continue
                self.store.plan(m, run_id=run_id, at=now)
                self._send(m, run_id, outcome, down, deadline)

        if dry_run:
            self._print_dry_run(outcome)
        else:
            done_ids = [n for n in routed if n > 0]
            settled = self.store.settled(done_ids)
            done = [n for n in done_ids if all((n, r) in settled for r in routed[n])]
            if done:
                self.store.mark_done(done, self.clock())
        for name, err in down.items():
            outcome.receivers[name].error = outcome.receivers[name].error or err
        return outcome

    # ---- helpers -------------------------------------------------------------------------------

    def _accepts(self, receiver: str, finding: Mapping[str, Any]) -> bool:
        """A receiver may take only some findings (PagerDuty: the trigger severities)."""
        accepts = getattr(self.notifiers.get(receiver), "accepts", None)
        return accepts is None or bool(accepts(finding))

    def _resend_planned(self, run_id: str | None, outcome: DeliveryOutcome, down: dict[str, str], deadline: float) -> None:
        for row in self.store.planned():
            if row["receiver"] not in self.notifiers:
                log.warning("planned_message_dropped", receiver=row["receiver"], message_id=row["message_id"],
                            reason="the receiver is no longer configured")
                self.store.drop(row["message_id"])
                continue
            ids = [n for it in row["items"] for n in it["notification_ids"]]
            known = self.store.notifications(ids)
            items = []
            for it in row["items"]:
                have = [known[n] for n in it["notification_ids"] if n in known]
                if have:
                    last = max(have, key=lambda n: n.id)
                    items.append(Item(it["fingerprint"], it["event"], last.finding, tuple(n.id for n in have), last.detail))
            if not items:  # every finding it carried is gone
                self.store.drop(row["message_id"])
                continue
            m = Message(row["receiver"], row["group_key"], row["group_labels"], tuple(items), row["message_id"])
            log.info("planned_message_resent", receiver=m.receiver, message_id=m.message_id, attempts=row["attempts"])
            self._send(m, run_id, outcome, down, deadline)

    def _send(self, m: Message, run_id: str | None, outcome: DeliveryOutcome, down: dict[str, str], deadline: float) -> None:
        rep = outcome.receivers[m.receiver]
        n = sum(len(i.notification_ids) for i in m.items)
        if m.receiver in down:
            rep.failed += n
            return
        notifier = self.notifiers[m.receiver]
        m = m.with_state(self.store.state(m.receiver, m.group_key))
        shadowing = self.mode == "shadow" and not getattr(notifier, "catch_all", False)

        def retried(attempt: int, e: DeliveryError, wait: float) -> None:
            log.warning("notification_retry", receiver=m.receiver, message_id=m.message_id, attempt=attempt,
                        wait_seconds=round(wait, 3), error=str(e))

        try:
            if shadowing:
                assert self.shadow is not None
                sent = self.shadow.write(m, self.types.get(m.receiver, ""))
            else:
                retrier = Retrier(self.retry, deadline=deadline, sleep=self.sleep, monotonic=self.monotonic)
                sent = retrier.call(lambda: notifier.send(m), on_retry=retried)
        except DeliveryError as e:
            self._failed(m, rep, n, str(e), retryable=e.retryable, down=down)
            return
        except Exception as e:  # noqa: BLE001 - a transport or template bug: recorded, never stops the others
            self._failed(m, rep, n, f"{type(e).__name__}: {first_line(e)}", retryable=False, down=down)
            return
        self.store.record_sent(m, state=sent.state, run_id=run_id, at=self.clock())
        rep.sent += n
        rep.messages += 1
        log.info("notification_sent", receiver=m.receiver, message_id=m.message_id, findings=len(m.items),
                 group=m.group_key, shadow=shadowing)

    def _failed(self, m: Message, rep: ReceiverReport, n: int, error: str, *, retryable: bool, down: dict[str, str]) -> None:
        error = redact_text(error)
        self.store.record_failure(m.message_id, error)
        rep.failed += n
        rep.error = error
        log.warning("notification_failed", receiver=m.receiver, message_id=m.message_id, error=error,
                    retryable=retryable, kept_for_next_cycle=True)
        if retryable:  # the receiver is down: leave its other messages for the next cycle
            down[m.receiver] = error

    def _print_dry_run(self, outcome: DeliveryOutcome) -> None:
        if self.out is None:
            return
        w = self.out.write
        w("\n[dry run] nothing is delivered or stored; this is what would be sent:\n")
        for name, rep in outcome.receivers.items():
            if getattr(self.notifiers[name], "catch_all", False):
                continue
            if not rep.would_send:
                w(f"  {name}: nothing\n")
                continue
            n = sum(len(m.items) for m in rep.would_send)
            w(f"  {name}: {len(rep.would_send)} message(s), {n} finding(s)\n")
            for m in rep.would_send:
                events: dict[str, int] = {}
                for i in m.items:
                    events[i.event] = events.get(i.event, 0) + 1
                what = ", ".join(f"{k} {v}" for k, v in sorted(events.items()))
                w(f"    · {m.group_key}: {what}\n")
        if self.mode == "shadow":
            w("  (notify.mode is shadow: a real run writes these to the shadow file instead of sending)\n")
