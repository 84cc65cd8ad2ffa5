-- presave's initial schema.
--
-- Privacy: we keep the provider's account ID and nothing else about a fan:
-- no name, e-mail or picture. Tokens are stored sealed (AES-256-GCM, see
-- internal/seal); the database never sees a plaintext token.

-- A fan is our own opaque ID (UUIDv7). Nothing personal.
CREATE TABLE fans (
    id         uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The provider accounts a fan connected: (provider, provider account ID) is
-- unique and belongs to exactly one fan; a fan has at most one account per
-- provider.
CREATE TABLE fan_accounts (
    provider   text NOT NULL CHECK (provider IN ('spotify', 'youtube')),
    account_id text NOT NULL CHECK (account_id <> ''),
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, account_id),
    UNIQUE (fan_id, provider)
);

-- Self-service credentials: only the SHA-256 of the fan token is stored.
CREATE TABLE fan_sessions (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    fan_id     uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fan_sessions_fan ON fan_sessions (fan_id);

-- One sealed grant per (fan, provider). The refresh and access tokens are
-- sealed under key_id with (fan ID, provider) as additional authenticated
-- data, so a ciphertext copied onto another row fails to open. A row lives
-- only while a pending pre-save needs it.
CREATE TABLE provider_tokens (
    fan_id            uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    provider          text NOT NULL CHECK (provider IN ('spotify', 'youtube')),
    key_id            text NOT NULL,
    refresh_sealed    bytea NOT NULL,
    access_sealed     bytea,
    access_expires_at timestamptz,
    scopes            text[] NOT NULL DEFAULT '{}',
    -- When the fan last authorized us: Spotify refresh tokens expire six
    -- months after it.
    authorized_at     timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    rotated_at        timestamptz,
    PRIMARY KEY (fan_id, provider)
);
CREATE INDEX provider_tokens_key ON provider_tokens (key_id);

-- Grants waiting to be revoked at the provider. The token row is deleted
-- at once; the sealed refresh token moves here, bound to this row's ID and
-- with no link to the fan, only until the revoke succeeds or is given up.
CREATE TABLE token_revocations (
    id           uuid PRIMARY KEY,
    provider     text NOT NULL CHECK (provider IN ('spotify', 'youtube')),
    key_id       text NOT NULL,
    token_sealed bytea NOT NULL,
    reason       text NOT NULL,
    attempts     int NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_revocations_key ON token_revocations (key_id);

CREATE TABLE releases (
    id                  uuid PRIMARY KEY,
    slug                text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title               text NOT NULL CHECK (title <> ''),
    artist              text NOT NULL CHECK (artist <> ''),
    -- fixed: one instant (release_at, UTC). local: 00:00 of release_date in
    -- each fan's own zone; default_zone is used when a fan gives none.
    timing              text NOT NULL CHECK (timing IN ('fixed', 'local')),
    release_at          timestamptz,
    release_date        date,
    default_zone        text,
    spotify_album_ids   text[] NOT NULL DEFAULT '{}',
    spotify_track_ids   text[] NOT NULL DEFAULT '{}',
    spotify_artist_ids  text[] NOT NULL DEFAULT '{}',
    spotify_playlist_id text,
    youtube_video_id    text,
    youtube_playlist_id text,
    status              text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'released', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((timing = 'fixed' AND release_at IS NOT NULL AND release_date IS NULL)
        OR (timing = 'local' AND release_date IS NOT NULL AND default_zone IS NOT NULL AND release_at IS NULL))
);

-- One pre-save per (fan, release, provider), with its consent record.
CREATE TABLE presaves (
    id               uuid PRIMARY KEY,
    fan_id           uuid NOT NULL REFERENCES fans (id) ON DELETE CASCADE,
    release_id       uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    provider         text NOT NULL CHECK (provider IN ('spotify', 'youtube')),
    actions          text[] NOT NULL CHECK (cardinality(actions) > 0),
    -- The consent record: when, which wording, the fan's zone, and the
    -- client IP truncated to its /24 (IPv4) or /48 (IPv6).
    consented_at     timestamptz NOT NULL,
    consent_version  text NOT NULL,
    fan_zone         text NOT NULL,
    client_ip_prefix cidr,
    due_at           timestamptz NOT NULL,
    -- Bumped whenever the pre-save is rescheduled or consented again; part
    -- of the asynq TaskID, since asynq blocks an archived task's ID forever.
    generation       int NOT NULL DEFAULT 1,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'enqueued', 'running', 'done', 'partial', 'failed', 'cancelled')),
    -- action -> {"outcome": "ok"|"already"|"failed", "reason": ..., "at": ...}
    results          jsonb NOT NULL DEFAULT '{}',
    attempts         int NOT NULL DEFAULT 0,
    last_error       text,
    enqueued_at      timestamptz,
    started_at       timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fan_id, release_id, provider)
);
-- The relay claims pending pre-saves by due time.
CREATE INDEX presaves_pending_due ON presaves (due_at) WHERE status = 'pending';
-- The relay and sweeper look for work that is in flight.
CREATE INDEX presaves_inflight_due ON presaves (due_at) WHERE status IN ('enqueued', 'running');
-- Release pages count by provider and status; rescheduling and
-- cancelling walk a release's pre-saves.
CREATE INDEX presaves_release ON presaves (release_id, provider, status);
-- "Does anything still need this fan's token?"
CREATE INDEX presaves_fan_open ON presaves (fan_id, provider) WHERE status IN ('pending', 'enqueued', 'running');

-- One-time OAuth states. Only the SHA-256 of the state is stored; the row
-- is deleted when used, and is worthless after expires_at.
CREATE TABLE oauth_states (
    state_hash       bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    provider         text NOT NULL CHECK (provider IN ('spotify', 'youtube')),
    release_id       uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    -- The PKCE verifier, sealed like a token (bound to the state hash).
    key_id           text NOT NULL,
    verifier_sealed  bytea NOT NULL,
    actions          text[] NOT NULL,
    fan_zone         text NOT NULL,
    consent_version  text NOT NULL,
    client_ip_prefix cidr,
    -- Set when a known fan (fan token) connects, so the grant joins them.
    fan_id           uuid REFERENCES fans (id) ON DELETE CASCADE,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
