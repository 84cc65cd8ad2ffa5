-- One attempt at a time per grant (fan and provider): the attempt that
-- starts takes the token row's lease in the same statement that starts
-- its pre-save (store.BeginAttempts), and its finish, requeue or late
-- results give it back (or delete the row). It keeps two pre-saves of
-- one fan from both refreshing (and rotating) one grant, and a
-- rescheduled generation from starting while the old one still runs;
-- a lease lapses by itself when its worker died.
ALTER TABLE provider_tokens
    ADD COLUMN leased_by   uuid,
    ADD COLUMN lease_until timestamptz;
