-- The campaign guard: a release goes live for a provider with a canary
-- first, and a spike of target errors (a wrong ID, a video gone private)
-- pauses it instead of failing every fan and purging every token.

-- One guard per release and provider. state:
--   canary  only the canary pre-saves (canary_ids, chosen when the
--           release first comes due) may start; the rest wait
--   open    everyone runs; the circuit breaker watches since opened_at
--   paused  nothing new starts but the canary's probes; pre-saves that
--           fail with a target error are held
CREATE TABLE release_guards (
    release_id   uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    provider     text NOT NULL,
    state        text NOT NULL DEFAULT 'canary' CHECK (state IN ('canary', 'open', 'paused')),
    canary_ids   uuid[],
    opened_at    timestamptz,
    -- Why it paused: cause (canary | breaker), the action and error, and
    -- the counts the decision saw (failed of seen).
    paused_at    timestamptz,
    pause_cause  text,
    pause_action text,
    pause_error  text,
    pause_failed int,
    pause_seen   int,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (release_id, provider)
);
-- The relay looks for canaries to choose and to settle.
CREATE INDEX release_guards_unsettled ON release_guards (release_id) WHERE state <> 'open';

-- Releases already under way keep running as before; the others get
-- their canary when they come due.
INSERT INTO release_guards (release_id, provider, state, opened_at)
SELECT r.id, p.provider,
       CASE WHEN EXISTS (SELECT 1 FROM presaves x WHERE x.release_id = r.id AND x.provider = p.provider AND x.attempts > 0)
            THEN 'open' ELSE 'canary' END,
       now()
FROM releases r CROSS JOIN (VALUES ('spotify'), ('youtube')) AS p (provider);

-- The artist team's own accounts (fan IDs) that run first in the canary.
ALTER TABLE releases ADD COLUMN canary_fans uuid[] NOT NULL DEFAULT '{}';

-- held: the pre-save failed with a target error while its release was
-- paused (or in its canary); results and token are kept until the
-- operator resumes (it runs again), cancels, or HOLD_MAX passes.
ALTER TABLE presaves DROP CONSTRAINT presaves_status_check;
ALTER TABLE presaves ADD CONSTRAINT presaves_status_check
    CHECK (status IN ('pending', 'enqueued', 'running', 'held', 'done', 'partial', 'failed', 'cancelled', 'needs_reconnect'));

-- The latest attempt's end (finished, held, or deferred as not live) and
-- its target error ("action: reason"), which the breaker counts per
-- release and provider over its last BREAKER_WINDOW ends.
ALTER TABLE presaves ADD COLUMN ended_at timestamptz, ADD COLUMN target_error text;
CREATE INDEX presaves_release_ended ON presaves (release_id, provider, ended_at) WHERE ended_at IS NOT NULL;

-- A held pre-save still needs its token.
DROP INDEX presaves_fan_open;
CREATE INDEX presaves_fan_open ON presaves (fan_id, provider) WHERE status IN ('pending', 'enqueued', 'running', 'held');
-- The hold deadline's sweep.
CREATE INDEX presaves_held_due ON presaves (due_at) WHERE status = 'held';
