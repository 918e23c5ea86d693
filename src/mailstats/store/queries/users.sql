-- name: user_insert
INSERT INTO users (account_id, name, password_hash, created_at)
VALUES (:account_id, :name, :password_hash, :now)
RETURNING id;

-- name: user_by_name
SELECT u.id, u.password_hash, a.id, a.name, a.timezone
FROM users u JOIN accounts a ON a.id = u.account_id
WHERE u.name = :name;

-- name: user_account
SELECT a.id, a.name, a.timezone
FROM users u JOIN accounts a ON a.id = u.account_id
WHERE u.id = :id;

-- name: user_rehash
UPDATE users SET password_hash = :password_hash WHERE id = :id;

-- name: token_sign_in
SELECT t.id, t.hash, a.id, a.name, a.timezone
FROM tokens t JOIN accounts a ON a.id = t.account_id
WHERE t.hash = :hash AND t.revoked_at IS NULL;

-- name: token_account
SELECT a.id, a.name, a.timezone
FROM tokens t JOIN accounts a ON a.id = t.account_id
WHERE t.id = :id AND t.revoked_at IS NULL;

-- name: account_of_emailing
SELECT a.id, a.name, a.timezone
FROM emailings e JOIN accounts a ON a.id = e.account_id
WHERE e.id = :id;

-- name: destination_by_key_any_account
SELECT d.id, a.id, a.name, a.timezone
FROM destinations d JOIN accounts a ON a.id = d.account_id
WHERE d.message_key = :key;
