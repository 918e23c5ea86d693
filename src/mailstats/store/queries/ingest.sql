-- name: destination_emailings
SELECT id, emailing_id FROM destinations
WHERE id IN (SELECT value FROM json_each(:ids)) AND account_id = :account_id;

-- name: derive_destinations
SELECT id, account_id, emailing_id FROM destinations
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: derive_links
SELECT id, emailing_id FROM links WHERE id IN (SELECT value FROM json_each(:ids));
