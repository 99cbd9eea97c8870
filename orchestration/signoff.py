"""Sign-off on Prefect: the run pauses with a form the UI renders, until a person answers.

The checks themselves (a second person, the plan's hash) are the engine's
(:mod:`gameday.protocol.signoff`); this is only how the question is asked.
"""

from __future__ import annotations

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput

from gameday.protocol.signoff import SignOff

#: Seconds between checks for an answer while paused (Prefect's default of 10 feels stuck).
POLL_SECONDS = 1


async def pause_for_sign_off(description: str, attempt: int, timeout: int) -> SignOff | None:
    """Pause the flow run with the sign-off form; the answer, or None when time ran out.

    Prefect validates the form against its JSON schema only, so the answer is validated
    again here (a ``ValidationError`` goes back to the engine, which asks again).
    """
    form = RunInput.subclass_from_base_model_type(SignOff).with_initial_data(
        description=description, approver="", plan_hash="")
    try:
        # A new key per attempt: Prefect refuses to pause twice under one key.
        raw = await apause_flow_run(wait_for_input=form, timeout=timeout,
                                    poll_interval=POLL_SECONDS, key=f"signoff-{attempt}")
    except FlowPauseTimeout:
        return None
    return SignOff.model_validate(raw, from_attributes=True)
