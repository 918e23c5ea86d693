-- name: webhook_insert
INSERT INTO webhooks (account_id, url, kinds, bots, secret, created_at)
VALUES (:account_id, :url, :kinds, :bots, :secret, :now)
RETURNING id;

-- name: webhook_select
SELECT w.id, w.account_id, w.url, w.kinds, w.bots, w.created_at, w.disabled_at, w.failures,
    w.attempts, w.next_at, w.delivered_id,
    (SELECT count(*) FROM webhook_outbox o WHERE o.webhook_id = w.id)
FROM webhooks w;

-- name: webhook_delete
DELETE FROM webhooks WHERE id = :id AND account_id = :account_id;

-- name: webhook_delete_outbox
DELETE FROM webhook_outbox WHERE webhook_id = :id;

-- name: webhook_delete_deliveries
DELETE FROM webhook_deliveries WHERE webhook_id = :id;

-- name: webhook_enable
UPDATE webhooks SET disabled_at = NULL, failures = 0, attempts = 0, next_at = 0
WHERE id = :id AND account_id = :account_id;

-- name: webhook_disable
UPDATE webhooks SET disabled_at = :now
WHERE id = :id AND account_id = :account_id AND disabled_at IS NULL;

-- name: webhook_replay
INSERT INTO webhook_outbox (webhook_id, event_id)
SELECT w.id, e.id FROM webhooks w JOIN events e ON e.account_id = w.account_id
WHERE w.id = :id AND e.id > :since_id AND ((w.kinds >> e.kind) & 1) = 1
ON CONFLICT DO NOTHING;

-- name: webhook_deliveries
SELECT id, message_id, attempt, at, events, first_id, last_id, status, latency_ms, error
FROM webhook_deliveries WHERE webhook_id = :id
ORDER BY id DESC LIMIT :limit OFFSET :start;

-- name: webhook_deliveries_count
SELECT count(*) FROM webhook_deliveries WHERE webhook_id = :id;

-- name: webhook_due
SELECT w.id FROM webhooks w
WHERE w.disabled_at IS NULL AND w.next_at <= :now AND w.lease_until < :now
  AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.webhook_id = w.id)
ORDER BY w.next_at, w.id LIMIT :limit;

-- name: webhook_lease
UPDATE webhooks SET lease_owner = :owner, lease_until = :until
WHERE id = :id AND disabled_at IS NULL AND next_at <= :now
  AND (lease_until < :now OR lease_owner = :owner);

-- name: webhook_leased
SELECT w.url, w.secret, w.kinds, w.message_id, w.attempts, a.timezone, w.bots
FROM webhooks w JOIN accounts a ON a.id = w.account_id
WHERE w.id = :id AND w.lease_owner = :owner;

-- name: webhook_release
UPDATE webhooks SET lease_owner = NULL, lease_until = 0
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_batch_none
UPDATE webhooks SET message_id = NULL, attempts = 0, lease_owner = NULL, lease_until = 0
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_batch_take
UPDATE webhook_outbox SET message_id = :message_id
WHERE webhook_id = :id AND event_id IN (
    SELECT event_id FROM webhook_outbox WHERE webhook_id = :id AND message_id IS NULL
    ORDER BY event_id LIMIT :limit);

-- name: webhook_batch_take_settled
-- For an endpoint with bots=exclude: the oldest waiting events up to the first whose verdict
-- is not settled yet, which waits (with all after it, to keep the order) until it is.
WITH head AS (
    SELECT event_id FROM webhook_outbox WHERE webhook_id = :id AND message_id IS NULL
    ORDER BY event_id LIMIT :limit
), stop AS (
    SELECT min(h.event_id) AS at FROM head h JOIN events e ON e.id = h.event_id
    WHERE e.settled = 0
)
UPDATE webhook_outbox SET message_id = :message_id
WHERE webhook_id = :id AND event_id IN (SELECT event_id FROM head
    WHERE event_id < coalesce((SELECT at FROM stop), 9223372036854775807));

-- name: webhook_batch_start
UPDATE webhooks SET message_id = :message_id, attempts = 0
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_batch_span
SELECT count(*), min(event_id), max(event_id) FROM webhook_outbox
WHERE webhook_id = :id AND message_id = :message_id;

-- name: webhook_batch_done
DELETE FROM webhook_outbox WHERE webhook_id = :id AND message_id = :message_id;

-- name: webhook_succeeded
UPDATE webhooks SET message_id = NULL, attempts = 0, failures = 0, next_at = 0,
    delivered_id = CASE WHEN :last_id > delivered_id THEN :last_id ELSE delivered_id END,
    lease_owner = NULL, lease_until = 0
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_failed
UPDATE webhooks SET attempts = attempts + 1, failures = failures + 1, next_at = :next_at,
    disabled_at = CASE WHEN failures + 1 >= :disable_after THEN :now ELSE disabled_at END,
    lease_owner = NULL, lease_until = 0
WHERE id = :id AND lease_owner = :owner;

-- name: webhook_attempt
INSERT INTO webhook_deliveries
    (webhook_id, message_id, attempt, at, events, first_id, last_id, status, latency_ms, error)
VALUES (:id, :message_id, :attempt, :at, :events, :first_id, :last_id, :status, :latency_ms,
    :error);

-- name: webhook_attempts_trim
DELETE FROM webhook_deliveries WHERE webhook_id = :id AND id < (
    SELECT id FROM webhook_deliveries WHERE webhook_id = :id
    ORDER BY id DESC LIMIT 1 OFFSET :keep);
