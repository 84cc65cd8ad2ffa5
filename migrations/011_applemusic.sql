-- Apple Music, a third provider. Its API names no user, so an Apple Music
-- connection has no account ID at all: no fan_accounts row, and the
-- pre-save's and the grant's account_id stay NULL. Its grant is the Music
-- User Token MusicKit JS obtained, sealed like any refresh token; it
-- cannot be refreshed or revoked, so purging it is deleting the row.
ALTER TABLE provider_tokens DROP CONSTRAINT provider_tokens_provider_check;
ALTER TABLE provider_tokens ADD CONSTRAINT provider_tokens_provider_check
    CHECK (provider IN ('spotify', 'youtube', 'applemusic'));
ALTER TABLE presaves DROP CONSTRAINT presaves_provider_check;
ALTER TABLE presaves ADD CONSTRAINT presaves_provider_check
    CHECK (provider IN ('spotify', 'youtube', 'applemusic'));
ALTER TABLE oauth_states DROP CONSTRAINT oauth_states_provider_check;
ALTER TABLE oauth_states ADD CONSTRAINT oauth_states_provider_check
    CHECK (provider IN ('spotify', 'youtube', 'applemusic'));
-- An Apple Music pre-save names no account.
ALTER TABLE presaves ADD CONSTRAINT presaves_applemusic_account_check
    CHECK (provider <> 'applemusic' OR account_id IS NULL);

-- The fan's storefront (two letters), read with the token: the catalogue
-- the release's IDs are looked up in. It goes with the token row.
ALTER TABLE provider_tokens ADD COLUMN storefront text CHECK (storefront ~ '^[a-z]{2}$');

-- The release's Apple Music targets: catalogue album and song IDs, and
-- the fan's own playlist. With applemusic_by_codes, the release's UPC and
-- ISRCs (spotify_upc, spotify_isrcs: the label's codes, not Spotify's)
-- are looked up in each fan's storefront instead.
ALTER TABLE releases
    ADD COLUMN applemusic_by_codes boolean NOT NULL DEFAULT false,
    ADD COLUMN applemusic_album_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN applemusic_song_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN applemusic_my_playlist_name text,
    ADD COLUMN applemusic_my_playlist_description text;

-- What a release's codes resolved to in each storefront: looked up once
-- per release and storefront by the first attempt that needs it, never
-- per fan. catalog_id NULL: the storefront had nothing yet at checked_at
-- (looked up again after a while).
CREATE TABLE applemusic_resolutions (
    release_id uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    storefront text NOT NULL CHECK (storefront ~ '^[a-z]{2}$'),
    code       text NOT NULL, -- "upc:CODE" / "isrc:CODE"
    catalog_id text CHECK (catalog_id <> ''),
    checked_at timestamptz NOT NULL,
    PRIMARY KEY (release_id, storefront, code)
);
