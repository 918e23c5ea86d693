-- name: destination_emailings
SELECT id, emailing_id FROM destinations
WHERE id IN (SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json)))
    AND account_id = :account_id;

-- name: derive_destinations
SELECT id, account_id, emailing_id FROM destinations
WHERE id IN (SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json)));

-- name: derive_links
SELECT id, emailing_id FROM links
WHERE id IN (SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json)));
