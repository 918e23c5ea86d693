-- lower() under the "C" collation lowercases ASCII only, as SQLite's does (and as the index is).

-- name: suppression_events_for
SELECT e.kind, e.ts, e.destination_id
FROM destinations d JOIN events e ON e.destination_id = d.id
WHERE d.account_id = :account_id AND lower(d.email COLLATE "C") = :email
  AND e.kind IN (:errors, :abuses, :unsubscribes)
  AND (e.kind <> :errors OR e.errortype = 'hard');

-- name: suppression_events
SELECT lower(d.email COLLATE "C"), e.kind, e.ts, e.destination_id
FROM events e JOIN destinations d ON d.id = e.destination_id
WHERE e.account_id = :account_id AND e.kind IN (:errors, :abuses, :unsubscribes)
  AND (e.kind <> :errors OR e.errortype = 'hard');
