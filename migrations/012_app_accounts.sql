-- How many accounts hold a grant of one provider: what a provider app
-- capped in users (a Spotify app in development mode, a Google app in
-- "Testing") can still take. Bounded by live grants: tokens go when no
-- pre-save needs them.
CREATE INDEX provider_tokens_provider ON provider_tokens (provider, account_id);
