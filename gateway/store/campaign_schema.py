"""Migration 6's tables: campaigns, their contacts, and the do-not-call list
(:mod:`gateway.store.campaigns` reads and writes them). Placeholders as in
:mod:`gateway.store.schema`."""

from __future__ import annotations

from typing import Final

DESCRIPTION: Final = "campaigns, their contacts, and the do-not-call list"
STATEMENTS: Final = (
    """
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY,            -- in every idempotency key: campaign:<id>:<row>:<n>
        name TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,           -- the CSV it was made from
        digest TEXT NOT NULL,           -- the CSV's sha256: resuming from another is refused
        call {json} NOT NULL,           -- agent, carrier, from, machine detection...
        created_at {ts} NOT NULL,
        finished_at {ts},
        contacts INTEGER                -- how many: set once all are in (NULL: importing)
    )""",
    """
    CREATE TABLE campaign_contacts (
        campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,           -- the row in the CSV, from 1
        number TEXT NOT NULL,           -- E.164 (a bad row: as given)
        zones TEXT NOT NULL,            -- IANA zones, space-separated
        parameters {json} NOT NULL,     -- handed to the agent
        state TEXT NOT NULL,            -- gateway.campaign.model.ContactState
        attempts INTEGER NOT NULL,
        next_at {ts},
        dial_id TEXT,
        last_status TEXT,               -- gateway.dialing.model.DialStatus
        answered_by TEXT,
        dial_ids {json} NOT NULL,       -- the gateway's call ids, one per attempt answered
        dial_times {json} NOT NULL,     -- when each attempt started
        result TEXT,                    -- gateway.campaign.model.Result
        error TEXT,
        first_dial_at {ts},
        last_dial_at {ts},
        ended_at {ts},
        PRIMARY KEY (campaign_id, seq)
    )""",
    "CREATE INDEX campaign_contacts_state ON campaign_contacts (campaign_id, state)",
    """
    CREATE TABLE do_not_call (
        number TEXT PRIMARY KEY,        -- E.164
        added_at {ts} NOT NULL,
        reason TEXT NOT NULL
    )""",
)
