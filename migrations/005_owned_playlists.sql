-- Playlists have owners. A release's playlist_id named the artist's
-- playlist, and neither Spotify ("You cannot add tracks to a playlist you
-- don't own", 403) nor YouTube (playlistItemsNotAccessible, 403) lets a
-- fan's account add to it: the "playlist" action failed for every fan on
-- the real services. It is replaced by actions on what the fan's account
-- may change:
--   Spotify  follow_playlist (the artist's playlist), add_to_my_playlist
--   YouTube  subscribe (the artist's channel), add_to_my_playlist
-- add_to_my_playlist creates a private playlist of the fan's own, named
-- and described as the release says, on release day.

-- Releases. A Spotify playlist_id becomes the playlist fans follow: that
-- is what the service allows with the artist's playlist, and the page
-- words the action anew (consent 2026-12-v3), so no fan is committed to
-- it without seeing it. YouTube has no call to save someone else's
-- playlist: youtube_playlist_id is dropped, and a release that had one
-- offers what remains (like; the team may add a channel or a playlist
-- name).
ALTER TABLE releases RENAME COLUMN spotify_playlist_id TO spotify_follow_playlist_id;
ALTER TABLE releases DROP COLUMN youtube_playlist_id;
ALTER TABLE releases
    ADD COLUMN youtube_channel_id text,
    ADD COLUMN spotify_my_playlist_name text,
    ADD COLUMN spotify_my_playlist_description text,
    ADD COLUMN youtube_my_playlist_name text,
    ADD COLUMN youtube_my_playlist_description text;

-- Pre-saves. A fan consented to "playlist", not to its replacements, so
-- nothing is substituted: an open pre-save's "playlist" action fails
-- with reason action_retired (its other actions run as consented; one
-- with no other action ends failed and its token is purged as usual).
UPDATE presaves
SET results = results || jsonb_build_object('playlist',
        jsonb_build_object('outcome', 'failed', 'reason', 'action_retired', 'at', now())),
    updated_at = now()
WHERE 'playlist' = ANY (actions)
  AND status IN ('pending', 'enqueued', 'running')
  AND NOT results ? 'playlist';

-- Consents begun under the old wording and not yet back from the
-- provider cannot complete: the fan starts again on the new page.
DELETE FROM oauth_states WHERE 'playlist' = ANY (actions);

-- The fan's own playlist for add_to_my_playlist, recorded as soon as it
-- exists so that no retry creates a second one.
ALTER TABLE presaves ADD COLUMN own_playlist_id text;
