"""Two-person sign-off: a second person approves the exact plan before a severe ladder runs.

From the environment's ``sign_off_severity`` on, the run asks for the form below through the
``ask`` callable it is given (the Prefect layer's is ``pause_flow_run`` with the form; see
``orchestration/signoff.py``) and shows the plan and its hash. The approver types their
name, which must differ from the requester's, and the hash, which must match the plan as it is
now. Prefect validates the form against its JSON schema only; these checks run after Prefect
accepted the resume, so a refused answer pauses the run again under a new key. No answer
within the timeout ends the run with nothing injected.
Every request, refusal and grant is journaled.

Prefect OSS has no user identity: a name is typed text. This guards against mistakes (a
misclick, a plan that changed, approving one's own run), not against a determined insider.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationError

from gameday.notes import SignoffGrantedNote, SignoffRefusedNote, SignoffRequestedNote
from gameday.notify import SignoffGrantedNotice, SignoffRequestedNotice, SignoffTimedOutNotice
from gameday.protocol.context import RunContext, endpoint_key


class SignOff(BaseModel):
    """The form a second person fills in to approve (or refuse) a game day."""

    approver: str = Field(min_length=1, max_length=100,
                          description="Your name. It must not be the requester's.")
    plan_hash: str = Field(min_length=1, max_length=64,
                           description="The plan hash shown above, typed again.")
    approve: bool = Field(True, description="Untick to refuse this game day.")


#: Show the form (its markdown, the attempt number, seconds left); the answer, or None when
#: time ran out. May raise ``ValidationError`` for an answer the model refuses.
AskForSignOff = Callable[[str, int, int], Awaitable[SignOff | None]]


@dataclass(frozen=True)
class Decision:
    """How the sign-off ended."""

    granted: bool
    approver: str | None
    reason: str


def needs_sign_off(ctx: RunContext) -> bool:
    """Whether the planned ladder reaches the environment's sign-off severity."""
    threshold = ctx.environment.sign_off_severity
    return threshold is not None and bool(ctx.severities) and max(ctx.severities) >= threshold


def plan_document(ctx: RunContext) -> dict[str, object]:
    """What is being approved: scenario, environment, target, and every step with its TTL."""
    scenario = ctx.scenario
    return {
        "scenario": scenario.name, "environment": ctx.environment.name,
        "target": {"service": scenario.target.service,
                   "dependency": scenario.target.dependency,
                   "driver": ctx.endpoint.driver, "at": endpoint_key(ctx.endpoint)},
        "steps": [{"severity": s,
                   "fault": scenario.step_fault(s).model_dump(mode="json", exclude_none=True),
                   "dwell": scenario.steps[s - 1].dwell, "ttl": scenario.ttl(s)}
                  for s in ctx.severities],
    }


def plan_hash(ctx: RunContext) -> str:
    """Twelve hex digits of the plan's SHA-256: any change to the plan changes them."""
    text = json.dumps(plan_document(ctx), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def review(answer: SignOff, requester: str, expected: str) -> list[str]:
    """Why ``answer`` cannot approve the plan hashed ``expected``; empty means approved."""
    problems = []
    approver = answer.approver.strip()
    if not approver:
        problems.append("type your name as the approver")
    elif approver.casefold() == requester.strip().casefold():
        problems.append(f"the approver must be a second person, not the requester "
                        f"({requester})")
    typed = "".join(answer.plan_hash.split()).lower()
    if typed != expected:
        problems.append(f"the plan hash does not match the plan (typed {typed[:20]!r})")
    return problems


def describe(ctx: RunContext, digest: str, problems: list[str] | None = None) -> str:
    """The markdown the sign-off form shows above its fields."""
    scenario = ctx.scenario
    target = scenario.target.service + (f" → {scenario.target.dependency}"
                                         if scenario.target.dependency else "")
    lines = [f"### Sign-off needed: `{scenario.name}` in `{ctx.environment.name}`", ""]
    if problems:
        lines += ["**The last answer was refused:** " + "; ".join(problems) + ".", ""]
    lines += [f"Requested by **{ctx.requester}**. From severity "
              f"{ctx.environment.sign_off_severity} on, a second person must approve the "
              f"exact plan. Target: {target} ({ctx.endpoint.driver} at "
              f"`{endpoint_key(ctx.endpoint)}`).", "",
              "| severity | fault | dwell | expires by itself after |", "|---:|---|---:|---:|"]
    for s in ctx.severities:
        lines.append(f"| {s} | {scenario.step_fault(s).summary()} | "
                     f"{scenario.steps[s - 1].dwell:g} s | {scenario.ttl(s):g} s |")
    lines += ["", f"Plan hash: **`{digest}`**", "",
              "To approve, type your name (not the requester's) and the plan hash. Untick "
              "*approve* to refuse the game day. Prefect has no user accounts: this check "
              "prevents mistakes, not a determined insider."]
    return "\n".join(lines)


async def await_sign_off(ctx: RunContext, timeout: float, ask: AskForSignOff) -> Decision:
    """Wait until a second person approves the plan, refuses it, or time runs out."""
    digest = plan_hash(ctx)
    severity = ctx.environment.sign_off_severity
    deadline = time.monotonic() + timeout
    ctx.journal.write(SignoffRequestedNote(message=f"plan {digest} needs a second person",
                                           plan_hash=digest, severity=severity,
                                           requester=ctx.requester))
    ctx.notify(SignoffRequestedNotice(
        run=ctx.run, text=f"{ctx.scenario.name} in {ctx.environment.name} by {ctx.requester} "
        f"reaches severity {severity}: a second person must approve plan {digest} in the "
        f"Prefect UI within {timeout:g}s", severity=severity, plan_hash=digest))
    problems: list[str] = []
    attempt = 0
    while True:
        left = int(deadline - time.monotonic())
        if left < 1:
            return _timed_out(ctx, timeout)
        attempt += 1
        try:
            answer = await ask(describe(ctx, digest, problems), attempt, left)
        except ValidationError as exc:
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in exc.errors(include_url=False)]
            _refused(ctx, None, problems)
            continue
        if answer is None:
            return _timed_out(ctx, timeout)
        approver = answer.approver.strip()
        if not answer.approve:
            reason = f"refused by {approver or 'a reviewer'} at sign-off; nothing injected"
            _refused(ctx, approver, [reason])
            return Decision(False, approver, reason)
        problems = review(answer, ctx.requester, digest)
        if problems:
            _refused(ctx, approver, problems)
            continue
        ctx.journal.write(SignoffGrantedNote(message=f"plan {digest} approved by {approver}",
                                             approver=approver, plan_hash=digest))
        ctx.notify(SignoffGrantedNotice(run=ctx.run, text=f"plan {digest} approved; the ladder "
                                        "starts", approver=approver, severity=severity))
        return Decision(True, approver, f"approved by {approver}")


def _refused(ctx: RunContext, approver: str | None, problems: list[str]) -> None:
    ctx.journal.write(SignoffRefusedNote(message="; ".join(problems), approver=approver))


def _timed_out(ctx: RunContext, timeout: float) -> Decision:
    reason = f"no sign-off within {timeout:g}s; nothing injected"
    ctx.journal.write(SignoffRefusedNote(message=reason, timed_out=True))
    ctx.notify(SignoffTimedOutNotice(run=ctx.run, text=reason, timeout=timeout))
    return Decision(False, None, reason)
