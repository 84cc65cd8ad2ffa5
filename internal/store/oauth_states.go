package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/seal"
)

// ErrStateExpired: an OAuth state was found but is past its expiry. It is
// deleted all the same, so it cannot be tried again.
var ErrStateExpired = errors.New("oauth state expired")

// OAuthState is what the API remembers between sending a fan to a
// provider's consent screen and the provider's callback. The state string
// itself is never stored, only its SHA-256; the PKCE verifier is sealed
// and bound to that hash.
type OAuthState struct {
	Provider       providers.Name
	ReleaseID      uuid.UUID
	Verifier       string
	Actions        []providers.Action
	FanZone        string
	ConsentVersion string
	// ConsentLocale is the locale of the wording the fan saw ("en").
	ConsentLocale  string
	ClientIPPrefix *netip.Prefix
	// FanID is the fan who started the connection with a valid fan token;
	// uuid.Nil for an anonymous start. It is trusted at the callback only
	// because the callback must come from the same client (Binding).
	FanID     uuid.UUID
	ExpiresAt time.Time
	// Binding is the nonce that binds the state to the client that
	// started it (the start answer sets it as a cookie; the callback must
	// carry it). Required. Only its SHA-256 is stored; a consumed state
	// holds the hash in bindingHash, checked by BoundTo.
	Binding     string
	bindingHash []byte
	// ViaPage is true when the fan page started the flow: its callback
	// answers with pages and sets the fan cookie.
	ViaPage bool
}

// BoundTo reports whether nonce is the binding the state was created
// with (constant time).
func (st OAuthState) BoundTo(nonce string) bool {
	if st.bindingHash == nil || nonce == "" {
		return false
	}
	h := sha256.Sum256([]byte(nonce))
	return subtle.ConstantTimeCompare(h[:], st.bindingHash) == 1
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

func verifierOwner(hash []byte) []byte {
	return seal.Owner("oauth_state", hex.EncodeToString(hash))
}

// CreateOAuthState stores a one-time state. States that expire unused
// are deleted by DeleteExpiredOAuthStates (the worker's sweeper), not
// here: a start is one INSERT.
func (s *Store) CreateOAuthState(ctx context.Context, state string, st OAuthState) error {
	hash := stateHash(state)
	keyID, sealed, err := s.ring.Seal([]byte(st.Verifier), verifierOwner(hash))
	if err != nil {
		return fmt.Errorf("store: seal verifier: %w", err)
	}
	var fan *uuid.UUID
	if st.FanID != uuid.Nil {
		fan = &st.FanID
	}
	if st.Binding == "" {
		return errors.New("store: create oauth state: a state must be bound to the client that starts it")
	}
	binding := sha256.Sum256([]byte(st.Binding))
	_, err = s.pool.Exec(ctx, `
		INSERT INTO oauth_states (state_hash, provider, release_id, key_id, verifier_sealed, actions, fan_zone,
			consent_version, consent_locale, client_ip_prefix, fan_id, expires_at, browser_binding, via_page)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		hash, st.Provider, st.ReleaseID, keyID, sealed, st.Actions, st.FanZone, st.ConsentVersion, localeOrEnglish(st.ConsentLocale),
		st.ClientIPPrefix, fan, st.ExpiresAt, binding[:], st.ViaPage)
	if err != nil {
		return fmt.Errorf("store: create oauth state: %w", err)
	}
	return nil
}

// DeleteExpiredOAuthStates deletes up to limit states that expired
// unused (a fan who never came back from the consent screen) and returns
// how many it deleted; the caller repeats while it gets limit.
//
// It runs in the sweeper, not in the starts: with thousands of starts
// outstanding, a plan cached while the table was small scans the whole
// table, which per start is what a release-day burst cannot afford. The
// batch is an array (= ANY), so each expired state is one primary-key
// probe whatever the planner thinks of the table's size.
func (s *Store) DeleteExpiredOAuthStates(ctx context.Context, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM oauth_states WHERE state_hash = ANY(ARRAY(
			SELECT state_hash FROM oauth_states WHERE expires_at < now()
			ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))`, limit)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired oauth states: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// consumedReleaseColumns are releaseColumns of the release joined to a
// consumed state (qualified: both tables have a created_at).
var consumedReleaseColumns = qualify("r", releaseColumns)

// qualify prefixes each column of a comma-separated list with table.
func qualify(table, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = table + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// ConsumeOAuthStateRelease deletes the state and returns what it held
// and its release as it is now, in one statement, so a state is used at
// most once even under concurrent callbacks (and a release-day burst of
// callbacks, bound by PostgreSQL, pays one statement for both).
// ErrNotFound for an unknown or already used state, ErrStateExpired when
// it expired before now (it is deleted either way). The release is
// returned only with the state (err == nil).
func (s *Store) ConsumeOAuthStateRelease(ctx context.Context, state string, now time.Time) (OAuthState, Release, error) {
	hash := stateHash(state)
	var st OAuthState
	var fan *uuid.UUID
	var sealed []byte
	// The release cannot be missing: deleting one cascades to its states.
	row := s.pool.QueryRow(ctx, `
		DELETE FROM oauth_states s USING releases r WHERE s.state_hash = $1 AND r.id = s.release_id
		RETURNING s.provider, s.release_id, s.verifier_sealed, s.actions, s.fan_zone, s.consent_version,
			s.consent_locale, s.client_ip_prefix, s.fan_id, s.expires_at, s.browser_binding, s.via_page, `+consumedReleaseColumns, hash)
	r, err := scanRelease(leadingColumns{row, []any{&st.Provider, &st.ReleaseID, &sealed, &st.Actions, &st.FanZone,
		&st.ConsentVersion, &st.ConsentLocale, &st.ClientIPPrefix, &fan, &st.ExpiresAt, &st.bindingHash, &st.ViaPage}})
	if err != nil {
		return OAuthState{}, Release{}, fmt.Errorf("store: consume oauth state: %w", notFound(err))
	}
	if !now.Before(st.ExpiresAt) {
		return OAuthState{}, Release{}, fmt.Errorf("store: consume oauth state: %w", ErrStateExpired)
	}
	if fan != nil {
		st.FanID = *fan
	}
	v, err := s.ring.Open(sealed, verifierOwner(hash))
	if err != nil {
		// Sealed under a key that was removed since: as good as expired.
		return OAuthState{}, Release{}, fmt.Errorf("store: open verifier: %w", err)
	}
	st.Verifier = string(v)
	return st, r, nil
}

// leadingColumns is a row whose first columns go to lead and the rest to
// whatever its Scan is given, so a row joining another table to a release
// can still be read by scanRelease.
type leadingColumns struct {
	row  pgx.Row
	lead []any
}

func (l leadingColumns) Scan(dest ...any) error {
	return l.row.Scan(append(l.lead[:len(l.lead):len(l.lead)], dest...)...)
}
