"""Publishing verdicts on ``{prefix}alert-feedback`` from the console's outbox.

A close writes its AlertFeedback into ``console_outbox`` in the same
transaction as the workflow change; :class:`FeedbackRelay` sends pending rows
(key = alert_id, value = the stored UTF-8 JSON, acks from all in-sync
replicas) and marks them published. The handler asks for an immediate send
and tells the analyst whether it went out; a background loop retries what
could not be sent (broker down, console restarted), so every recorded
verdict is published at least once. Re-sends are byte-identical, and the
worker keeps one row per (alert_id, decided_at, analyst_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import pipeline.broker.clients as clients
from pipeline.console.store import ConsoleStore
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any: ...


def feedback_producer(s: Settings) -> AIOKafkaProducer:
    return clients.producer(
        s,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        client_id="access-watch-console",
    )


class FeedbackRelay:
    """Sends the outbox's pending verdicts; one instance per console process."""

    def __init__(
        self, store: ConsoleStore, sender_factory: Callable[[], Sender], interval: float = 5.0
    ) -> None:
        self.store = store
        self._factory = sender_factory
        self.sender: Sender | None = None
        self.interval = interval
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        """Start the producer (or note that the broker is away) and the retry loop."""
        async with self._lock:
            await self._connect()
        self._task = asyncio.create_task(self._loop(), name="feedback-relay")

    async def _connect(self) -> bool:
        if self.sender is not None:
            return True
        sender = self._factory()
        try:
            await sender.start()
        except KafkaError as exc:
            # The console still serves pages; verdicts wait in the outbox.
            self.last_error = f"broker unreachable: {exc}"
            log.warning("feedback producer not started (%s); will retry", exc)
            await sender.stop()
            return False
        self.sender = sender
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.sender is not None:
            await self.sender.stop()
            self.sender = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish_pending()
            except (OSError, RuntimeError) as exc:  # database briefly away: next round
                log.warning("feedback relay: %s", exc)

    async def publish_pending(self, limit: int = 100) -> int:
        """Send what is pending; return how many were published."""
        async with self._lock:
            pending = await self.store.outbox_pending(limit)
            if not pending or not await self._connect() or self.sender is None:
                return 0
            sent = 0
            for item in pending:
                try:
                    await self.sender.send_and_wait(
                        item.topic, value=item.value.encode(), key=item.alert_id.encode()
                    )
                except KafkaError as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await self.store.outbox_failed(item.id, self.last_error)
                    log.warning("feedback for %s not published: %s", item.alert_id, exc)
                    break
                await self.store.outbox_done(item.id)
                sent += 1
            if sent:
                self.last_error = None
            return sent

    async def publish_now(self, timeout: float) -> bool:
        """Try to publish at once; True when nothing is left pending."""
        try:
            await asyncio.wait_for(self.publish_pending(), timeout)
        except TimeoutError:
            return False
        return not await self.store.outbox_pending(1)
