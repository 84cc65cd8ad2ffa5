-- A release may name its Spotify album by UPC and its tracks by ISRC,
-- known to labels long before Spotify's IDs. The codes are resolved once
-- per release, by a search on the app's own token, into the release's
-- album and track IDs; until then its Spotify pre-saves wait (the
-- campaign guard does not choose the canary of an unresolved release).
ALTER TABLE releases
    ADD COLUMN spotify_upc text,
    ADD COLUMN spotify_isrcs text[] NOT NULL DEFAULT '{}',
    -- none (no codes) | pending (some code not found yet) | resolved
    -- (every code found) | operator (the IDs were set by hand meanwhile)
    ADD COLUMN spotify_resolution text NOT NULL DEFAULT 'none'
        CHECK (spotify_resolution IN ('none', 'pending', 'resolved', 'operator')),
    -- "upc:CODE" / "isrc:CODE" -> {"id": ..., "at": ...}: what each code
    -- resolved to and when
    ADD COLUMN spotify_resolved jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN spotify_resolve_attempts int NOT NULL DEFAULT 0,
    ADD COLUMN spotify_resolve_next_at timestamptz;
-- The relay looks for resolutions due.
CREATE INDEX releases_resolution_pending ON releases (spotify_resolve_next_at) WHERE spotify_resolution = 'pending';
