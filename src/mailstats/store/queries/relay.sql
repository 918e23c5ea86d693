-- name: relay_emailing_get
SELECT emailing_id FROM relay_emailings WHERE account_id = :account_id AND key = :key;

-- name: relay_emailing_insert
INSERT INTO relay_emailings (account_id, key, emailing_id) VALUES (:account_id, :key, :emailing_id)
ON CONFLICT (account_id, key) DO NOTHING
RETURNING emailing_id;

-- name: relay_emailing_delete
DELETE FROM relay_emailings WHERE emailing_id = :emailing_id;

-- name: relay_links
SELECT url, id FROM links WHERE emailing_id = :emailing_id;

-- name: relay_destination_insert
INSERT INTO destinations
    (account_id, emailing_id, created_at, email, profile, subprofile, fields, message_key)
VALUES (:account_id, :emailing_id, :created_at, :email, NULL, NULL, '{}', :message_key)
ON CONFLICT (message_key) DO NOTHING
RETURNING id, emailing_id, created_at, email, profile, subprofile, fields, message_key;

-- name: relay_destination_by_key
SELECT id, emailing_id, created_at, email, profile, subprofile, fields, message_key
FROM destinations WHERE message_key = :message_key AND account_id = :account_id;

-- name: relay_destination_delete
DELETE FROM destinations
WHERE id = :id AND NOT EXISTS (SELECT 1 FROM events WHERE destination_id = :id);

-- name: relay_emailing_used
SELECT 1 FROM destinations WHERE emailing_id = :id LIMIT 1;

-- name: relay_links_delete
DELETE FROM links WHERE emailing_id = :emailing_id;

-- name: relay_emailing_drop
DELETE FROM emailings WHERE id = :emailing_id;

-- name: meta_put
INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = :value;
