-- The locale of the consent wording a fan saw, beside its version: a
-- version is translated into several locales, and the record must say
-- which text was agreed to. Every consent before this was in English.
ALTER TABLE presaves ADD COLUMN consent_locale text NOT NULL DEFAULT 'en';
ALTER TABLE oauth_states ADD COLUMN consent_locale text NOT NULL DEFAULT 'en';
