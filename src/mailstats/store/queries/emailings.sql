-- name: emailing_insert
INSERT INTO emailings (account_id, created_at, type, subject, from_name, from_email, html, text, tags)
VALUES (:account_id, :created_at, :type, :subject, :from_name, :from_email, :html, :text, :tags)
RETURNING id;

-- name: link_insert
INSERT INTO links (emailing_id, start, stop, url) VALUES (:emailing_id, :start, :stop, :url);

-- name: emailing_get
SELECT id, created_at, type, subject, from_name, from_email, destinations, tags, html, text
FROM emailings WHERE id = :id AND account_id = :account_id;

-- name: emailing_links
-- The template's links; those the relay added from later messages (start < 0) sit nowhere in it.
SELECT id, start, stop, url FROM links WHERE emailing_id = :emailing_id AND start >= 0 ORDER BY start;

-- name: emailing_trap
-- The trap link of an emailing (start -2): rendered invisibly into every tracked HTML body.
SELECT id, start, stop, url FROM links WHERE emailing_id = :emailing_id AND start = -2;

-- name: emailing_count_destinations
UPDATE emailings SET destinations = destinations + :n WHERE id = :id;
