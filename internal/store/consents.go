package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/presave/presave/internal/providers"
)

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
	// ConsentLocale is the locale of the wording the fan saw; "" is "en".
	ConsentLocale  string
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
	if (c.AccountID == "") == c.Provider.HasAccountID() {
		return Consented{}, fmt.Errorf("store: record consent: %s account ID %q: a provider that names accounts needs one, Apple Music has none", c.Provider, c.AccountID)
	}
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
	var facts consentFacts
	err := s.inPipelinedTx(ctx, consentCheck(c, &facts), func() (*pgx.Batch, error) {
		b := &pgx.Batch{}
		if err := linkAccount(b, c, facts, &out); err != nil {
			return nil, err
		}
		tok := c.Token
		tok.FanID, tok.Provider, tok.AccountID = out.FanID, c.Provider, c.AccountID
		query, args, err := s.putTokenQuery(tok)
		if err != nil {
			return nil, err
		}
		b.Queue(query, args...)
		queuePresaveUpsert(b, c, out.FanID, &out.Presave)
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

// consentFacts is what the consent transaction reads before it writes.
type consentFacts struct {
	// live: the release is still scheduled, at the version read.
	live bool
	// linked is the fan the provider account already belongs to, if any.
	linked *uuid.UUID
	// otherAccountBusy: the known fan has open pre-saves of other
	// releases on this provider, consented with another account.
	otherAccountBusy bool
}

// consentCheck is the consent transaction's first batch, which fills f.
// The release must still be scheduled, as read: FOR SHARE holds off a
// cancellation or a new release time until the consent commits, so the
// pre-save is either moved or cancelled with the others, never left
// behind with a stale due time. The account lookup (FOR UPDATE: two
// callbacks of one new account must not both create a fan) rides in the
// same statement.
func consentCheck(c Consent, f *consentFacts) *pgx.Batch {
	var version *time.Time
	if !c.ReleaseUpdatedAt.IsZero() {
		version = &c.ReleaseUpdatedAt
	}
	check := &pgx.Batch{}
	if c.FanID != uuid.Nil {
		// Consents of one fan are serialized, so two of different accounts
		// cannot both find the other's pre-saves missing. A statement of
		// its own: the check below then reads what the lock waited for.
		check.Queue(`SELECT 1 FROM fans WHERE id = $1 FOR UPDATE`, c.FanID).Exec(func(pgconn.CommandTag) error { return nil })
	}
	check.Queue(`
		SELECT EXISTS (SELECT 1 FROM releases WHERE id = $1 AND status = 'scheduled'
				AND ($2::timestamptz IS NULL OR updated_at = $2) FOR SHARE),
			(SELECT fan_id FROM fan_accounts WHERE provider = $3 AND account_id = $4 FOR UPDATE),
			EXISTS (SELECT 1 FROM presaves WHERE fan_id = $5 AND provider = $3 AND release_id <> $1
				AND status IN `+openStatuses+` AND account_id IS DISTINCT FROM $4)`,
		c.ReleaseID, version, c.Provider, nullable(c.AccountID), c.FanID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&f.live, &f.linked, &f.otherAccountBusy)
	})
	return check
}

// linkAccount decides whose consent this is and queues the account link:
// the fan the account belongs to, or the known fan (replacing its link to
// another account of the provider), or a new fan. It refuses what the
// facts forbid (ErrReleaseChanged, ErrAccountTaken, ErrOtherAccount).
func linkAccount(b *pgx.Batch, c Consent, f consentFacts, out *Consented) error {
	switch {
	case !f.live:
		return ErrReleaseChanged
	case f.linked != nil:
		if c.FanID != uuid.Nil && c.FanID != *f.linked {
			return ErrAccountTaken
		}
		out.FanID = *f.linked
		return nil
	case f.otherAccountBusy:
		return ErrOtherAccount
	}
	out.FanID = c.FanID
	if out.FanID == uuid.Nil {
		out.FanID = uuid.Must(uuid.NewV7())
		b.Queue(`INSERT INTO fans (id) VALUES ($1)`, out.FanID)
		out.FanCreated = true
	}
	if c.AccountID == "" {
		// A provider that names no account (Apple Music): the
		// connection is the fan's grant, linked to nothing at the
		// provider.
		return nil
	}
	if !out.FanCreated {
		// A fan has one account per provider: connecting another account
		// of the same provider replaces the link, which consentCheck allows
		// only when no open pre-save of another release uses the old one.
		b.Queue(`DELETE FROM fan_accounts WHERE fan_id = $1 AND provider = $2`, out.FanID, c.Provider)
	}
	b.Queue(`INSERT INTO fan_accounts (provider, account_id, fan_id) VALUES ($1, $2, $3)`, c.Provider, c.AccountID, out.FanID)
	return nil
}

// enqueuedUnlessHeldBack is the status a consent records ($11): enqueued
// only when the release's guard for the provider is open. A new pre-save
// is never one of a canary, so while the guard is in its canary or
// paused it waits as pending, for the relay, instead of being queued to
// be held back at its start.
const enqueuedUnlessHeldBack = `CASE WHEN $11 = 'enqueued' AND NOT EXISTS (SELECT 1 FROM release_guards g
			WHERE g.release_id = $3 AND g.provider = $4 AND g.state <> 'open') THEN 'enqueued' ELSE 'pending' END`

// queuePresaveUpsert queues the pre-save's insert, or the update of a
// repeated consent (a new generation; a pre-save already done stays
// done), scanning the row into ps.
func queuePresaveUpsert(b *pgx.Batch, c Consent, fanID uuid.UUID, ps *Presave) {
	status := PresavePending
	if c.Enqueue {
		status = PresaveEnqueued
	}
	b.Queue(`
		INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, client_ip_prefix, due_at,
			status, enqueued_at, account_id, consent_locale)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, `+enqueuedUnlessHeldBack+`,
			CASE WHEN `+enqueuedUnlessHeldBack+` = 'enqueued' THEN now() END, $12, $13)
		ON CONFLICT (fan_id, release_id, provider) DO UPDATE SET
			account_id = CASE WHEN presaves.status IN ('done') THEN presaves.account_id ELSE EXCLUDED.account_id END,
			actions = EXCLUDED.actions, consented_at = EXCLUDED.consented_at, consent_version = EXCLUDED.consent_version,
			consent_locale = EXCLUDED.consent_locale, fan_zone = EXCLUDED.fan_zone, client_ip_prefix = EXCLUDED.client_ip_prefix, due_at = EXCLUDED.due_at,
			generation = presaves.generation + 1,
			status = CASE WHEN presaves.status IN ('done') THEN presaves.status ELSE EXCLUDED.status END,
			completed_at = CASE WHEN presaves.status IN ('done') THEN presaves.completed_at END,
			enqueued_at = CASE WHEN presaves.status IN ('done') THEN NULL ELSE EXCLUDED.enqueued_at END,
			-- A held pre-save consented again runs again in full once its
			-- release resumes: its target failures are forgotten, as a
			-- resume does.
			results = CASE WHEN presaves.status = 'held' THEN `+withoutTargetFailures("presaves.results")+` ELSE presaves.results END,
			target_error = NULL, last_error = NULL, updated_at = now()
		RETURNING `+presaveColumns,
		uuid.Must(uuid.NewV7()), fanID, c.ReleaseID, c.Provider, c.Actions, c.ConsentedAt, c.ConsentVersion, c.FanZone, c.ClientIPPrefix, c.DueAt,
		status, nullable(c.AccountID), localeOrEnglish(c.ConsentLocale)).QueryRow(func(row pgx.Row) error {
		var err error
		*ps, err = scanPresave(row)
		return err
	})
}

// localeOrEnglish is the consent locale to record: every wording exists
// in English, the locale of a consent that names none.
func localeOrEnglish(l string) string {
	if l == "" {
		return "en"
	}
	return l
}
