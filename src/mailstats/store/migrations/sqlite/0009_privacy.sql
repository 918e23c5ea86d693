-- Privacy by configuration (store/privacy.py): per account, what the derive step keeps of
-- a hit's IP address and user agent, and how many days each kind keeps personal fields
-- (retention, JSON: kind -> days; a kind not named keeps them for ever).
CREATE TABLE account_settings (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    ip         TEXT NOT NULL DEFAULT 'full',    -- full | truncated | none
    useragent  TEXT NOT NULL DEFAULT 'full',    -- full | parsed
    retention  TEXT NOT NULL DEFAULT '{}'
);

-- The OS and client a hit's user agent names, parsed at capture: kept when the agent goes.
ALTER TABLE events ADD COLUMN os TEXT;
ALTER TABLE events ADD COLUMN client TEXT;

-- A destination whose address, profile and fields were removed (erasure or retention).
ALTER TABLE destinations ADD COLUMN cleared_at INTEGER;

-- The audit log of erasures: a keyed hash of the address, never the address itself.
CREATE TABLE erasures (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    subject      TEXT NOT NULL,     -- hex HMAC-SHA256 of the lowercased address
    erased_at    INTEGER NOT NULL,
    destinations INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    via          TEXT NOT NULL      -- api | cli
);
CREATE INDEX erasures_subject ON erasures (account_id, subject);
