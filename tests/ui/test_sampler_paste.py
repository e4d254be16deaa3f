"""A pasted infotext sets the sampler and schedule type it names, for every pair A1111 1.10 writes."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("params, sampler, schedule", [
    ("Sampler: Euler a, Schedule type: Karras", "Euler a", "Karras"),
    ("Sampler: DDIM, Schedule type: Align Your Steps", "DDIM", "Align Your Steps"),
    ("Sampler: DPM++ 2M SDE Heun Exponential", "DPM++ 2M SDE Heun", "Exponential"),
    ("Sampler: LCM, Schedule type: KL Optimal", "LCM", "KL Optimal"),
])
def test_pasted_sampler_and_schedule_are_kept(params, sampler, schedule):
    from webui.ui.params import fields_from_infotext

    fields = fields_from_infotext(f"a cat\nSteps: 3, {params}, CFG scale: 7, Seed: 1, Size: 64x64")
    assert (fields["sampler_name"], fields["scheduler"]) == (sampler, schedule)
