-- name: event_id_by_key
SELECT event_id FROM event_keys WHERE key = :key;
