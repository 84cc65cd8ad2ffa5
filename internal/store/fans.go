package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/presave/presave/internal/providers"
)

// PresaveStatus is a pre-save's lifecycle state.
type PresaveStatus string

// Pre-save statuses. Pending, enqueued and running are open: they still
// need the fan's token. The others are final.
const (
	PresavePending   PresaveStatus = "pending"
	PresaveEnqueued  PresaveStatus = "enqueued"
	PresaveRunning   PresaveStatus = "running"
	PresaveDone      PresaveStatus = "done"
	PresavePartial   PresaveStatus = "partial"
	PresaveFailed    PresaveStatus = "failed"
	PresaveCancelled PresaveStatus = "cancelled"
)

// Open reports whether the pre-save still needs to run.
func (s PresaveStatus) Open() bool {
	return s == PresavePending || s == PresaveEnqueued || s == PresaveRunning
}

// ActionResult is what happened to one consented action.
type ActionResult struct {
	Outcome string    `json:"outcome"` // ok | already | failed
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Presave is one fan's pre-save of one release on one provider, with its
// consent record.
type Presave struct {
	ID        uuid.UUID
	FanID     uuid.UUID
	ReleaseID uuid.UUID
	Provider  providers.Name
	// AccountID is the provider account the fan consented with; the
	// pre-save runs only with a grant of that account. Empty for a
	// pre-save recorded before accounts were kept per pre-save whose fan
	// had no link left.
	AccountID      string
	Actions        []providers.Action
	ConsentedAt    time.Time
	ConsentVersion string
	FanZone        string
	ClientIPPrefix *netip.Prefix
	DueAt          time.Time
	Generation     int
	Status         PresaveStatus
	Results        map[providers.Action]ActionResult
	Attempts       int
	LastError      string
	EnqueuedAt     *time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

const presaveColumns = `id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone,
	client_ip_prefix, due_at, generation, status, results, attempts, last_error, enqueued_at, started_at,
	completed_at, created_at, updated_at, account_id`

func scanPresave(row pgx.Row) (Presave, error) {
	var p Presave
	var results []byte
	var lastErr, account *string
	err := row.Scan(&p.ID, &p.FanID, &p.ReleaseID, &p.Provider, &p.Actions, &p.ConsentedAt, &p.ConsentVersion, &p.FanZone,
		&p.ClientIPPrefix, &p.DueAt, &p.Generation, &p.Status, &results, &p.Attempts, &lastErr, &p.EnqueuedAt,
		&p.StartedAt, &p.CompletedAt, &p.CreatedAt, &p.UpdatedAt, &account)
	if err != nil {
		return Presave{}, notFound(err)
	}
	p.LastError, p.AccountID = deref(lastErr), deref(account)
	if err := json.Unmarshal(results, &p.Results); err != nil {
		return Presave{}, fmt.Errorf("results: %w", err)
	}
	return p, nil
}

// Presave reads a pre-save by ID.
func (s *Store) Presave(ctx context.Context, id uuid.UUID) (Presave, error) {
	p, err := scanPresave(s.pool.QueryRow(ctx, `SELECT `+presaveColumns+` FROM presaves WHERE id = $1`, id))
	if err != nil {
		return Presave{}, fmt.Errorf("store: presave: %w", err)
	}
	return p, nil
}

// AnonymizeIP truncates an address to its /24 (IPv4) or /48 (IPv6), which
// is what the consent record keeps.
func AnonymizeIP(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, _ := addr.Prefix(bits)
	return p
}

// Consent is a fan's consent to pre-save one release on one provider, as
// the OAuth callback has it.
type Consent struct {
	// FanID is the fan already known to the caller (a fan token came
	// with the request); uuid.Nil otherwise. The provider account decides
	// when it is already linked to a fan.
	FanID          uuid.UUID
	Provider       providers.Name
	AccountID      string
	Token          Token // FanID and Provider are filled in by Consent
	ReleaseID      uuid.UUID
	Actions        []providers.Action
	ConsentedAt    time.Time
	ConsentVersion string
	FanZone        string
	ClientIPPrefix *netip.Prefix
	DueAt          time.Time
	// Enqueue records the pre-save as enqueued in the same transaction
	// (the caller queues its task right after the commit, because it is
	// due within the relay window). It saves the separate MarkDueEnqueued
	// update; if the process dies before the task is queued, the relay's
	// rescue finds the enqueued row without a task and queues it. A
	// pre-save that already finished stays as it was.
	Enqueue bool
	// ReleaseUpdatedAt is the release version DueAt was computed from; the
	// consent is refused with ErrReleaseChanged if the release changed
	// since (zero: only check that it is still scheduled).
	ReleaseUpdatedAt time.Time
}

// Consented is the result of recording a consent.
type Consented struct {
	FanID      uuid.UUID
	FanCreated bool
	Presave    Presave
	// FanToken is a new self-service token for the fan (shown once; only
	// its hash is stored).
	FanToken string
}

// ErrReleaseChanged: between reading the release and recording the
// consent, the release was cancelled, released or given a new time (the
// due time computed from it is stale). Nothing was written.
var ErrReleaseChanged = errors.New("release changed while the fan was connecting")

// ErrAccountTaken: the provider account belongs to another fan than the
// one the request proved to be.
var ErrAccountTaken = errors.New("provider account is linked to another fan")

// ErrOtherAccount: the fan already has open pre-saves on this provider
// with another account than the one just connected. Storing the new
// grant would run those pre-saves on an account they were not consented
// with, so nothing is written; the fan disconnects the other account
// first or connects with it.
var ErrOtherAccount = errors.New("the fan's open pre-saves on this provider use another account")

// RecordConsent stores a consent in one transaction: the fan (created or
// found by provider account), the account link, the sealed token, the
// pre-save with its consent record and due time, and a fresh fan token. A
// repeated consent to the same release and provider updates the pre-save
// and bumps its generation (unless it already finished).
//
// Only the release check and the account lookup (one statement) need an
// answer before the writes, so the transaction takes two round trips: BEGIN
// with that statement, then the writes with COMMIT (inPipelinedTx). A
// release-day burst of callbacks is bound by CPU, and every round trip
// costs PostgreSQL and the API a wake-up each.
func (s *Store) RecordConsent(ctx context.Context, c Consent, newFanToken func() (string, error)) (Consented, error) {
	var out Consented
	var sessionHash []byte
	if newFanToken != nil {
		var err error
		if out.FanToken, err = newFanToken(); err != nil {
			return Consented{}, fmt.Errorf("store: record consent: %w", err)
		}
		h := sha256.Sum256([]byte(out.FanToken))
		sessionHash = h[:]
	}
	status := PresavePending
	if c.Enqueue {
		status = PresaveEnqueued
	}
	presaveID := uuid.Must(uuid.NewV7())
	// The release must still be scheduled, as read: FOR SHARE holds off
	// a cancellation or a new release time until this commits, so the
	// pre-save is either moved or cancelled with the others, never left
	// behind with a stale due time. The account lookup (FOR UPDATE: two
	// callbacks of one new account must not both create a fan) rides in
	// the same statement.
	var version *time.Time
	if !c.ReleaseUpdatedAt.IsZero() {
		version = &c.ReleaseUpdatedAt
	}
	var live, otherAccountBusy bool
	var linked *uuid.UUID
	check := &pgx.Batch{}
	if c.FanID != uuid.Nil {
		// Consents of one fan are serialized, so two of different accounts
		// cannot both find the other's pre-saves missing. A statement of
		// its own: the check below then reads what the lock waited for.
		check.Queue(`SELECT 1 FROM fans WHERE id = $1 FOR UPDATE`, c.FanID).Exec(func(pgconn.CommandTag) error { return nil })
	}
	// otherAccountBusy: the known fan has open pre-saves of other
	// releases on this provider, consented with another account.
	check.Queue(`
		SELECT EXISTS (SELECT 1 FROM releases WHERE id = $1 AND status = 'scheduled'
				AND ($2::timestamptz IS NULL OR updated_at = $2) FOR SHARE),
			(SELECT fan_id FROM fan_accounts WHERE provider = $3 AND account_id = $4 FOR UPDATE),
			EXISTS (SELECT 1 FROM presaves WHERE fan_id = $5 AND provider = $3 AND release_id <> $1
				AND status IN ('pending', 'enqueued', 'running') AND account_id IS DISTINCT FROM $4)`,
		c.ReleaseID, version, c.Provider, c.AccountID, c.FanID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&live, &linked, &otherAccountBusy)
	})
	err := s.inPipelinedTx(ctx, check, func() (*pgx.Batch, error) {
		if !live {
			return nil, ErrReleaseChanged
		}
		b := &pgx.Batch{}
		switch {
		case linked != nil:
			if c.FanID != uuid.Nil && c.FanID != *linked {
				return nil, ErrAccountTaken
			}
			out.FanID = *linked
		case otherAccountBusy:
			return nil, ErrOtherAccount
		default:
			out.FanID = c.FanID
			if out.FanID == uuid.Nil {
				out.FanID = uuid.Must(uuid.NewV7())
				b.Queue(`INSERT INTO fans (id) VALUES ($1)`, out.FanID)
				out.FanCreated = true
			} else {
				// A fan has one account per provider: connecting another
				// account of the same provider replaces the link, which
				// the check above allows only when no open pre-save of
				// another release uses the old one. (A fan created just
				// now has none.)
				b.Queue(`DELETE FROM fan_accounts WHERE fan_id = $1 AND provider = $2`, out.FanID, c.Provider)
			}
			b.Queue(`INSERT INTO fan_accounts (provider, account_id, fan_id) VALUES ($1, $2, $3)`, c.Provider, c.AccountID, out.FanID)
		}
		tok := c.Token
		tok.FanID, tok.Provider, tok.AccountID = out.FanID, c.Provider, c.AccountID
		query, args, err := s.putTokenQuery(tok)
		if err != nil {
			return nil, err
		}
		b.Queue(query, args...)
		b.Queue(`
			INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, client_ip_prefix, due_at,
				status, enqueued_at, account_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $11 = 'enqueued' THEN now() END, $12)
			ON CONFLICT (fan_id, release_id, provider) DO UPDATE SET
				account_id = CASE WHEN presaves.status IN ('done') THEN presaves.account_id ELSE EXCLUDED.account_id END,
				actions = EXCLUDED.actions, consented_at = EXCLUDED.consented_at, consent_version = EXCLUDED.consent_version,
				fan_zone = EXCLUDED.fan_zone, client_ip_prefix = EXCLUDED.client_ip_prefix, due_at = EXCLUDED.due_at,
				generation = presaves.generation + 1,
				status = CASE WHEN presaves.status IN ('done') THEN presaves.status ELSE EXCLUDED.status END,
				completed_at = CASE WHEN presaves.status IN ('done') THEN presaves.completed_at END,
				enqueued_at = CASE WHEN presaves.status IN ('done') THEN NULL ELSE EXCLUDED.enqueued_at END,
				last_error = NULL, updated_at = now()
			RETURNING `+presaveColumns,
			presaveID, out.FanID, c.ReleaseID, c.Provider, c.Actions, c.ConsentedAt, c.ConsentVersion, c.FanZone, c.ClientIPPrefix, c.DueAt,
			status, c.AccountID).QueryRow(func(row pgx.Row) error {
			var err error
			out.Presave, err = scanPresave(row)
			return err
		})
		if sessionHash != nil {
			b.Queue(`INSERT INTO fan_sessions (token_hash, fan_id) VALUES ($1, $2)`, sessionHash, out.FanID)
		}
		return b, nil
	})
	if err != nil {
		return Consented{}, fmt.Errorf("store: record consent: %w", err)
	}
	return out, nil
}

// FanByToken finds the fan a self-service token belongs to. ErrNotFound
// for an unknown token (or a deleted fan).
func (s *Store) FanByToken(ctx context.Context, token string) (uuid.UUID, error) {
	h := sha256.Sum256([]byte(token))
	var id uuid.UUID
	if err := s.pool.QueryRow(ctx, `SELECT fan_id FROM fan_sessions WHERE token_hash = $1`, h[:]).Scan(&id); err != nil {
		return uuid.Nil, fmt.Errorf("store: fan by token: %w", notFound(err))
	}
	return id, nil
}

// WithdrawPresave cancels one of the fan's pre-saves and purges its token
// if nothing else needs it. ErrNotFound when the pre-save is not the fan's.
func (s *Store) WithdrawPresave(ctx context.Context, fanID, presaveID uuid.UUID, revocable Revocable) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var owner uuid.UUID
		if err := tx.QueryRow(ctx, `SELECT fan_id FROM presaves WHERE id = $1`, presaveID).Scan(&owner); err != nil || owner != fanID {
			return ErrNotFound
		}
		var err error
		out, err = s.cancelPresaves(ctx, tx, `id = $1`, []any{presaveID}, revocable, "consent_withdrawn")
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: withdraw: %w", err)
	}
	return out, nil
}

// Disconnect cancels the fan's open pre-saves on p and deletes the token
// and the account link, whatever else it was needed for.
func (s *Store) Disconnect(ctx context.Context, fanID uuid.UUID, p providers.Name, revocable Revocable) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = s.cancelPresaves(ctx, tx, `fan_id = $1 AND provider = $2`, []any{fanID, p}, revocable, "disconnected"); err != nil {
			return err
		}
		if len(out.Purges) == 0 {
			pt, err := s.purgeToken(ctx, tx, fanID, p, revocable != nil && revocable(p), "disconnected")
			if err != nil {
				return err
			}
			if pt.Deleted {
				out.Purges = append(out.Purges, PurgedToken{FanID: fanID, Provider: p, Purge: pt})
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM fan_accounts WHERE fan_id = $1 AND provider = $2`, fanID, p)
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: disconnect: %w", err)
	}
	return out, nil
}

// DeleteFan deletes everything about the fan, irreversibly: it cancels
// the open pre-saves, moves revocable grants to token_revocations (bound
// to the revocation, not the fan) and deletes the fan, which cascades to
// accounts, sessions, tokens and pre-saves. ErrNotFound when the fan is
// already gone.
func (s *Store) DeleteFan(ctx context.Context, fanID uuid.UUID, revocable Revocable) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM fans WHERE id = $1 FOR UPDATE`, fanID).Scan(&one); err != nil {
			return notFound(err)
		}
		var err error
		if out, err = s.cancelPresaves(ctx, tx, `fan_id = $1`, []any{fanID}, revocable, "account_deleted"); err != nil {
			return err
		}
		for _, p := range providers.Names {
			pt, err := s.purgeToken(ctx, tx, fanID, p, revocable != nil && revocable(p), "account_deleted")
			if err != nil {
				return err
			}
			if pt.Deleted {
				out.Purges = append(out.Purges, PurgedToken{FanID: fanID, Provider: p, Purge: pt})
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM fans WHERE id = $1`, fanID)
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: delete fan: %w", err)
	}
	return out, nil
}

// FanExport is everything presave holds about a fan, without any secret.
type FanExport struct {
	FanID     uuid.UUID
	CreatedAt time.Time
	Accounts  []ExportedAccount
	Tokens    []ExportedToken
	Presaves  []Presave
}

// ExportedAccount is a linked provider account.
type ExportedAccount struct {
	Provider  providers.Name
	AccountID string
	CreatedAt time.Time
}

// ExportedToken says a grant is stored, never the grant itself.
type ExportedToken struct {
	Provider     providers.Name
	Scopes       []string
	AuthorizedAt time.Time
	CreatedAt    time.Time
}

// ExportFan gathers everything about the fan.
func (s *Store) ExportFan(ctx context.Context, fanID uuid.UUID) (FanExport, error) {
	out := FanExport{FanID: fanID}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT created_at FROM fans WHERE id = $1`, fanID).Scan(&out.CreatedAt); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `SELECT provider, account_id, created_at FROM fan_accounts WHERE fan_id = $1 ORDER BY provider`, fanID)
		if err != nil {
			return err
		}
		if out.Accounts, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ExportedAccount]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT provider, scopes, authorized_at, created_at FROM provider_tokens WHERE fan_id = $1 ORDER BY provider`, fanID)
		if err != nil {
			return err
		}
		if out.Tokens, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ExportedToken]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+presaveColumns+` FROM presaves WHERE fan_id = $1 ORDER BY created_at`, fanID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPresave(rows)
			if err != nil {
				return err
			}
			out.Presaves = append(out.Presaves, p)
		}
		return rows.Err()
	})
	if err != nil {
		return FanExport{}, fmt.Errorf("store: export: %w", err)
	}
	return out, nil
}
