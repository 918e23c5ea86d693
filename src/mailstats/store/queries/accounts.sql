-- name: account_by_name
SELECT id, name, timezone FROM accounts WHERE name = :name;

-- name: account_by_id
SELECT id, name, timezone FROM accounts WHERE id = :id;

-- name: account_insert
INSERT INTO accounts (name, timezone, created_at) VALUES (:name, :timezone, :now)
RETURNING id;

-- name: token_insert
INSERT INTO tokens (account_id, hash, hint, created_at) VALUES (:account_id, :hash, :hint, :now)
RETURNING id;

-- name: token_lookup
SELECT t.hash, a.id, a.name, a.timezone
FROM tokens t JOIN accounts a ON a.id = t.account_id
WHERE t.hash = :hash AND t.revoked_at IS NULL;

-- name: token_list
SELECT t.id, a.name, t.hint, t.created_at, t.revoked_at
FROM tokens t JOIN accounts a ON a.id = t.account_id
ORDER BY t.id;

-- name: token_revoke
UPDATE tokens SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;

-- name: meta_get
SELECT value FROM meta WHERE key = :key;

-- name: meta_put_new
INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING;
