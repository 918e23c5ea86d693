-- name: destination_emailings
SELECT id, emailing_id FROM destinations
WHERE id IN (SELECT value FROM json_each(:ids)) AND account_id = :account_id;
