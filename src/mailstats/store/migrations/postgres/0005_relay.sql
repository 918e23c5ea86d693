-- The SMTP relay: the emailing each X-Mailstats-Emailing key names, and the suppression
-- list's manual side. Suppressions themselves are computed from stored events (hard errors,
-- abuses, unsubscribes), so they hold however those events arrive; this table only adds
-- entries by hand and clears an address (events up to `cleared_at` no longer count).

CREATE TABLE relay_emailings (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    key         TEXT NOT NULL,
    emailing_id BIGINT NOT NULL REFERENCES emailings (id),
    PRIMARY KEY (account_id, key)
);

CREATE TABLE suppression_marks (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    email      TEXT NOT NULL, -- lowercased
    added_at   BIGINT,       -- put on the list by hand at this time
    cleared_at BIGINT,       -- removed at this time: earlier events no longer suppress
    PRIMARY KEY (account_id, email)
);

-- A recipient's earlier destinations, found by address at RCPT TO. The "C" collation
-- lowercases ASCII only, as SQLite's lower() does, so both backends match alike.
CREATE INDEX destinations_account_email ON destinations (account_id, lower(email COLLATE "C"));
