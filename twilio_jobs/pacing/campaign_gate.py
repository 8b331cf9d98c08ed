"""A campaign's state gates its sends (`lua/campaign_gate.lua`): while it is paused or
cancelled no slot is granted, on any worker, from the next acquire on."""

from __future__ import annotations

from twilio_jobs import keys


def campaign_key(campaign_id: str) -> str:
    """The campaign hash the gate reads; a key never written for a job without a campaign."""
    return keys.campaign(campaign_id) if campaign_id else keys.NO_CAMPAIGN
