-- name: destination_insert
INSERT INTO destinations
    (account_id, emailing_id, created_at, email, profile, subprofile, fields, message_key)
VALUES (:account_id, :emailing_id, :created_at, :email, :profile, :subprofile, :fields, :message_key)
RETURNING id;

-- name: destination_get
SELECT id, emailing_id, created_at, email, profile, subprofile, fields, message_key
FROM destinations WHERE id = :id AND account_id = :account_id;

-- name: destination_for_tracking
SELECT account_id, emailing_id, fields FROM destinations WHERE id = :id;

-- name: destination_by_message_key
SELECT id FROM destinations WHERE message_key = :key AND account_id = :account_id;

-- name: link_by_id
SELECT emailing_id, url FROM links WHERE id = :id;

-- name: destination_by_email
SELECT id FROM destinations
WHERE emailing_id = :emailing_id AND lower(email) = lower(:email) AND account_id = :account_id
ORDER BY id LIMIT 1;
