"""One game day per environment for deployment runs: a Prefect global concurrency limit.

Each environment has a limit named ``gameday-env-<name>`` with one slot. A deployment run
takes it with ``strict=True`` (a missing or misspelled limit is an error, never "no limit")
before it prepares, and holds it until it ends. A second run waits, and says so in the UI:
its state reads ``AwaitingEnvironment`` with the reason until the slot is free.

The slot's lease is renewed while the holder lives. A holder killed outright keeps it until
the lease expires, so the lease ID is journaled: the reaper (the ``sweep`` flow) releases it
from the journal at once. The file lock of :mod:`gameday.protocol.lock` stays too: it covers
command-line runs, which take no slot.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.asyncio import concurrency
from prefect.concurrency.context import ConcurrencyContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import get_current_settings
from prefect.states import Running

from gameday.journal import Event, read_journal
from gameday.notes import SlotNote, WaitingNote, WarningNote
from gameday.notify import WaitingNotice, WarningNotice
from gameday.paths import journal_path
from gameday.protocol.context import RunContext
from gameday.protocol.lock import EnvironmentLock

#: Seconds of each lease (Prefect's minimum): how long a killed holder can block the
#: environment when the reaper does not free it first.
LEASE_SECONDS = 60.0
#: Heartbeat period deployment runs need: the zombie rule waits 60 s for the next beat.
HEARTBEAT_SECONDS = 30
#: The state name a waiting run shows in the UI.
WAITING = "AwaitingEnvironment"


def slot_name(environment: str) -> str:
    """The global concurrency limit of ``environment``."""
    return f"gameday-env-{environment}"


async def ensure_slots(environments: Iterable[str]) -> list[str]:
    """Create the one-slot limit of each environment unless it exists; the names created.

    An existing limit is left alone (someone may have deactivated it on purpose).
    """
    created = []
    async with get_client() as client:
        for environment in environments:
            name = slot_name(environment)
            try:
                await client.read_global_concurrency_limit_by_name(name)
                continue
            except ObjectNotFound:
                pass
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1))
                created.append(name)
    return created


async def _busy(name: str) -> bool:
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(name)
    return limit.active and limit.active_slots >= limit.limit


def _holder_text(environment: str) -> str:
    holder = EnvironmentLock(environment).holder()
    return f"run {holder.run} holds it" if holder else "another game day holds it"


async def _show_state(run: uuid.UUID, name: str, message: str) -> None:
    # Proposed, never forced: a run being cancelled while it waits must stay cancelled.
    async with get_client() as client:
        await client.set_flow_run_state(run, Running(name=name, message=message))


def _check_heartbeat(ctx: RunContext) -> None:
    beat = get_current_settings().flows.heartbeat_frequency
    if beat is None or beat > HEARTBEAT_SECONDS:
        # The reaper's zombie rule takes a deployment run silent for 60 s for dead.
        ctx.journal.write(WarningNote(message=(
            f"heartbeats every {beat}s, not {HEARTBEAT_SECONDS:g}s: the reaper may take this "
            "live run for dead; keep PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 (prefect.yaml sets "
            "it)")))
        ctx.notify(WarningNotice(run=ctx.run, text="this run's heartbeats are too rare for the "
                                 "reaper's zombie rule"))


@contextlib.asynccontextmanager
async def environment_slot(ctx: RunContext) -> AsyncIterator[None]:
    """Hold the environment's slot for the body; wait for it first, visibly."""
    environment = ctx.environment.name
    name = slot_name(environment)
    run = uuid.UUID(ctx.run)
    await ensure_slots([environment])
    _check_heartbeat(ctx)
    waited = await _busy(name)
    if waited:
        reason = (f"waiting for environment {environment!r}: one game day per environment, "
                  f"and {_holder_text(environment)}; this run starts when it ends")
        ctx.journal.write(WaitingNote(message=reason, limit=name))
        ctx.notify(WaitingNotice(run=ctx.run, text=reason, limit=name))
        await _show_state(run, WAITING, reason)
    # A context of our own, to read the lease ID Prefect records for its clean-up.
    with ConcurrencyContext() as leases:
        async with concurrency(name, occupy=1, strict=True, lease_duration=LEASE_SECONDS,
                               holder=ConcurrencyLeaseHolder(type="flow_run", id=run)):
            lease = leases.cleanup_lease_ids[-1] if leases.cleanup_lease_ids else None
            ctx.journal.write(SlotNote(message=f"holding {name}", limit=name,
                                       lease=str(lease or "")))
            if waited:
                await _show_state(run, "Running", f"environment {environment!r} is free")
            try:
                yield
            finally:
                # The file lock goes first: the run waiting for this slot takes the lock next.
                if ctx.lock is not None:
                    ctx.lock.release()


def journaled_leases(events: Iterable[Event]) -> list[uuid.UUID]:
    """The slot leases a run's journal records."""
    return [uuid.UUID(e.lease) for e in events if isinstance(e, SlotNote) and e.lease]


def free_slot(run: str) -> int:
    """Release the slot of a run that died holding it, by the leases its journal records;
    how many. Releasing a lease that is already gone is not an error."""
    path = journal_path(run)
    leases = journaled_leases(read_journal(path)) if path.exists() else []
    if leases:
        # Synchronous: hooks call this from sync code, inside an event loop or not.
        with get_client(sync_client=True) as client:
            for lease in leases:
                client.release_concurrency_slots_with_lease(lease)
    return len(leases)
