-- name: suppression_events_for
-- The events that put one address on the list: hard errors, abuses, unsubscribes.
SELECT e.kind, e.ts, e.destination_id
FROM destinations d JOIN events e ON e.destination_id = d.id
WHERE d.account_id = :account_id AND lower(d.email) = :email
  AND e.kind IN (:errors, :abuses, :unsubscribes)
  AND (e.kind <> :errors OR e.errortype = 'hard');

-- name: suppression_events
SELECT lower(d.email), e.kind, e.ts, e.destination_id
FROM events e JOIN destinations d ON d.id = e.destination_id
WHERE e.account_id = :account_id AND e.kind IN (:errors, :abuses, :unsubscribes)
  AND (e.kind <> :errors OR e.errortype = 'hard');

-- name: suppression_mark_get
SELECT email, added_at, cleared_at FROM suppression_marks
WHERE account_id = :account_id AND email = :email;

-- name: suppression_marks
SELECT email, added_at, cleared_at FROM suppression_marks WHERE account_id = :account_id;

-- name: suppression_mark_add
INSERT INTO suppression_marks (account_id, email, added_at, cleared_at)
VALUES (:account_id, :email, :now, NULL)
ON CONFLICT (account_id, email) DO UPDATE SET added_at = :now;

-- name: suppression_mark_clear
INSERT INTO suppression_marks (account_id, email, added_at, cleared_at)
VALUES (:account_id, :email, NULL, :now)
ON CONFLICT (account_id, email) DO UPDATE SET added_at = NULL, cleared_at = :now;
