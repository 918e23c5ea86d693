-- name: event_id_by_key
SELECT id FROM events WHERE key = :key;
