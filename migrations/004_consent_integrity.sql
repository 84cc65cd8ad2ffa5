-- Every OAuth state is bound to the client that started it: the start
-- answer sets a short-lived HttpOnly cookie holding a random nonce whose
-- SHA-256 is kept here, and the callback completes only with that cookie.
-- A state without one (an API start before this migration) could be
-- finished in any browser, so those are dropped; they lived 10 minutes.
DELETE FROM oauth_states WHERE browser_binding IS NULL;
ALTER TABLE oauth_states ALTER COLUMN browser_binding SET NOT NULL;

-- Whether the fan page started the flow: its callback answers with pages
-- and the fan cookie; an API client's answers JSON only.
ALTER TABLE oauth_states ADD COLUMN via_page boolean NOT NULL DEFAULT false;

-- The provider account a pre-save was consented with, and the account a
-- stored grant belongs to: a pre-save runs only with a grant of its own
-- account. Rows from before this migration take the fan's current link;
-- a pre-save whose fan has no link any more keeps NULL (it cannot run:
-- its grant went with the link).
ALTER TABLE presaves ADD COLUMN account_id text CHECK (account_id <> '');
ALTER TABLE provider_tokens ADD COLUMN account_id text CHECK (account_id <> '');
UPDATE presaves p SET account_id = a.account_id
    FROM fan_accounts a WHERE a.fan_id = p.fan_id AND a.provider = p.provider;
UPDATE provider_tokens t SET account_id = a.account_id
    FROM fan_accounts a WHERE a.fan_id = t.fan_id AND a.provider = t.provider;
