"""The request cap: why a run stopped short of ``--num-instructions``.

A run keeps exactly ``--num-instructions`` instructions, or stops after ``--max-requests``
bootstrap requests (default: 20 per instruction asked for), whichever comes first, so that
a model that never writes enough valid, novel instructions cannot loop forever.
:func:`cap_reason` says, in one line, that the cap stopped it, where the cap was, and why
so few candidates were kept (the reject reasons, most frequent first, and failed
requests), so that the next step is clear: a higher cap, a lower bar, or another model.
"""

from __future__ import annotations

from selfinstruct.run.config import RunConfig


def cap_reason(config: RunConfig, kept: int, requests: int,
               rejected_by_reason: dict[str, int], failed_requests: int = 0) -> str:
    """One line: the cap, what it kept, and the reasons candidates were rejected."""
    cap = config.request_budget
    how = (f"--max-requests {config.max_requests}" if config.max_requests
           else f"--max-requests default: 20 per instruction asked for, {cap}")
    rejected = sum(rejected_by_reason.values())
    line = (f"stopped at the request cap: {requests:,} bootstrap requests ({how}) kept "
            f"{kept:,} of the {config.num_instructions:,} instructions asked for")
    if rejected:
        top = sorted(rejected_by_reason.items(), key=lambda item: (-item[1], item[0]))[:3]
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in top)
        line += (f"; {rejected:,} of {kept + rejected:,} candidates were rejected "
                 f"({reasons}{', ...' if len(rejected_by_reason) > 3 else ''})")
    elif not failed_requests:
        line += "; the model wrote no candidate instruction"
    if failed_requests:
        line += f"; {failed_requests:,} requests failed (failures.jsonl)"
    return line
