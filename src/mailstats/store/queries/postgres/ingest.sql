-- name: destination_emailings
SELECT id, emailing_id FROM destinations
WHERE id IN (SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json)))
    AND account_id = :account_id;
