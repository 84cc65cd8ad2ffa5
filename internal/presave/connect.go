package presave

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// DefaultConsentLocale is the locale of a consent that names none: every
// consent wording exists in English.
const DefaultConsentLocale = "en"

const (
	// StateTTL is how long a fan has to come back from the consent screen.
	StateTTL = 10 * time.Minute
	// GrantMargin is how long before its provider's fixed expiry a grant
	// stops being used for a pre-save: a pre-save due later could fail
	// on its last retries, or in a clock skew.
	GrantMargin = 24 * time.Hour
)

// NewToken returns 32 random bytes, base64url: a state, a fan token, a
// binding nonce.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Start is a fan's request to connect a provider for a release.
type Start struct {
	Provider string
	// Release is the release's slug or ID.
	Release string
	// Actions the fan consents to; empty means all the release offers on
	// the provider.
	Actions []providers.Action
	// Zone is the fan's IANA time zone; empty means the release's default
	// zone (local timing) or UTC.
	Zone string
	// Consent must be true: the fan ticked the consent box.
	Consent bool
	// ConsentVersion is the wording the fan saw; empty means the current
	// one, anything else must equal it.
	ConsentVersion string
	// ConsentLocale is the locale of the wording the fan saw ("ja");
	// empty means DefaultConsentLocale. It must be one the current
	// wording exists in.
	ConsentLocale string
	// Binding is the nonce binding the state to the client that starts
	// (the transport hands it to the client); required.
	Binding string
	// ViaPage marks a start from the fan page.
	ViaPage bool
	// FanID is the fan a valid fan token proved (uuid.Nil if none).
	FanID    uuid.UUID
	ClientIP netip.Addr
}

// Started is where to send the fan next.
type Started struct {
	AuthorizeURL string
	ExpiresAt    time.Time
}

// Callback is what the provider's redirect brought back.
type Callback struct {
	Provider string
	Code     string
	State    string
	// Error is the provider's error parameter (e.g. access_denied).
	Error string
	// FanToken is a fan token the request carried (cookie), if any.
	FanToken string
	// Binding is the binding nonce the request carried, if any.
	Binding string
}

// CallbackState is what a callback learned about its state, even when it
// failed: whether the fan page started it, and its release.
type CallbackState struct {
	ViaPage   bool
	ReleaseID uuid.UUID
}

// Connection is a completed connection.
type Connection struct {
	FanID uuid.UUID
	// FanToken proves who the fan is for self-service (only its hash is
	// stored): new, or the one the fan came back with.
	FanToken string
	NewFan   bool
	Presave  store.Presave
	// Queued is true when the pre-save is due soon and already queued.
	Queued bool
}

// ErrUnknownProvider names a provider presave does not connect.
func ErrUnknownProvider(name string) *Error {
	return errorf(KindNotFound, "unknown_provider", "presave connects spotify, youtube and applemusic (where configured), not %q.", name)
}

// Provider returns the named provider, or ErrUnknownProvider.
func (s *Service) Provider(name string) (providers.Provider, error) {
	p, ok := s.providers.Get(providers.Name(name))
	if !ok || !providers.Name(name).Valid() {
		return nil, ErrUnknownProvider(name)
	}
	return p, nil
}

// FindRelease reads a release by ID or slug; ErrReleaseNotFound.
func (s *Service) FindRelease(ctx context.Context, ref string) (store.Release, error) {
	var r store.Release
	var err error
	if id, perr := uuid.Parse(ref); perr == nil {
		r, err = s.store.Release(ctx, id)
	} else if IsSlug(ref) {
		r, err = s.store.ReleaseBySlug(ctx, ref)
	} else {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return r, ErrReleaseNotFound
	}
	return r, err
}

func releaseNotOpen(r store.Release) *Error {
	return errorf(KindConflict, "release_not_open", "This release is %s and takes no more pre-saves.", r.Status)
}

// Horizon is the latest a pre-save may be due on a grant of p authorized
// at authorizedAt (the zero time when p sets no limit): its provider's
// fixed expiry less GrantMargin.
func Horizon(p providers.Provider, authorizedAt time.Time) time.Time {
	exp := p.GrantExpiry(authorizedAt)
	if exp.IsZero() {
		return exp
	}
	return exp.Add(-GrantMargin)
}

// PastHorizon reports whether a pre-save due at due comes after the
// Horizon of a grant of p authorized at authorizedAt: it cannot be
// delivered on that grant.
func PastHorizon(p providers.Provider, authorizedAt, due time.Time) bool {
	h := Horizon(p, authorizedAt)
	return !h.IsZero() && due.After(h)
}

// grantHorizon refuses a pre-save due after Horizon: its grant would have
// expired by then.
func grantHorizon(p providers.Provider, due, authorizedAt time.Time) error {
	if PastHorizon(p, authorizedAt, due) {
		h := Horizon(p, authorizedAt)
		return errorf(KindUnprocessable, string(p.Name())+"_horizon_exceeded",
			"%s access lasts until %s, and this release is due later than that; please come back closer to the release.",
			p.Name().Label(), h.UTC().Format(time.DateOnly))
	}
	return nil
}

// StartConnect checks a fan's request, records a one-time state (only its
// hash, with the sealed PKCE verifier, the release, the actions, the zone
// and the consent version, bound to the starting client) and returns the
// provider's consent-screen URL.
func (s *Service) StartConnect(ctx context.Context, req Start) (Started, error) {
	p, err := s.Provider(req.Provider)
	if err != nil {
		return Started{}, err
	}
	if !req.Consent {
		return Started{}, invalid("consent_required", "Tick the consent box: we only act on your account with your explicit consent.")
	}
	if req.Binding == "" {
		return Started{}, errors.New("presave: a start must be bound to its client")
	}
	version := req.ConsentVersion
	if version == "" {
		version = s.consentVersion
	}
	if version != s.consentVersion {
		return Started{}, invalid("consent_version_unknown", "The consent wording you saw is out of date; please reload the page.")
	}
	locale := cmp.Or(req.ConsentLocale, DefaultConsentLocale)
	if !slices.Contains(s.consentLocales, locale) {
		return Started{}, invalid("consent_locale_unknown", "consent_locale must be one the consent wording exists in: %s.",
			strings.Join(s.consentLocales, ", "))
	}
	if req.Release == "" {
		return Started{}, invalid("release_required", "Name the release (its slug or ID).")
	}
	r, err := s.FindRelease(ctx, req.Release)
	if err != nil {
		return Started{}, err
	}
	if r.Status != store.ReleaseScheduled {
		return Started{}, releaseNotOpen(r)
	}
	actions, err := consentedActions(p, r, req.Actions)
	if err != nil {
		return Started{}, err
	}
	zone := req.Zone
	if zone == "" {
		zone = DefaultZone(r)
	}
	if err := s.CheckZone(ctx, "zone", zone); err != nil {
		return Started{}, err
	}
	due, err := r.DueAt(zone)
	if err != nil {
		return Started{}, invalid("invalid_zone", "zone must be an IANA time zone name such as Europe/Paris.")
	}
	now := s.now()
	// Checked here to spare the fan a useless trip to Spotify; the
	// callback checks again against the actual authorization time.
	if err := grantHorizon(p, due, now); err != nil {
		return Started{}, err
	}
	if err := s.appRoom(ctx, p, req.FanID, ""); err != nil {
		return Started{}, err
	}
	state, err := NewToken()
	if err != nil {
		return Started{}, err
	}
	verifier := oauth2.GenerateVerifier()
	st := store.OAuthState{
		Provider: p.Name(), ReleaseID: r.ID, Verifier: verifier, Actions: actions, FanZone: zone,
		ConsentVersion: version, ConsentLocale: locale, FanID: req.FanID, ExpiresAt: now.Add(StateTTL), Binding: req.Binding, ViaPage: req.ViaPage,
	}
	if req.ClientIP.IsValid() {
		prefix := store.AnonymizeIP(req.ClientIP)
		st.ClientIPPrefix = &prefix
	}
	if err := s.store.CreateOAuthState(ctx, state, st); err != nil {
		return Started{}, err
	}
	return Started{AuthorizeURL: p.AuthCodeURL(state, verifier, p.Scopes(actions)), ExpiresAt: st.ExpiresAt}, nil
}

// DefaultZone is the zone a start without one uses: the release's
// default zone (local timing), or UTC.
func DefaultZone(r store.Release) string {
	if r.DefaultZone != "" {
		return r.DefaultZone
	}
	return "UTC"
}

// consentedActions is what the fan asked for among what the release
// offers on p, in the provider's order and without duplicates; all of it
// when the fan named none.
func consentedActions(p providers.Provider, r store.Release, asked []providers.Action) ([]providers.Action, error) {
	offered := p.Actions(r.Target(p.Name()))
	if len(offered) == 0 {
		return nil, invalid("provider_not_offered", "This release has nothing to pre-save on %s.", p.Name())
	}
	if len(asked) == 0 {
		return offered, nil
	}
	for _, a := range asked {
		if !slices.Contains(offered, a) {
			return nil, invalid("action_not_offered", "This release does not offer %q on %s (it offers %v).", a, p.Name(), offered)
		}
	}
	var actions []providers.Action
	for _, a := range offered {
		if slices.Contains(asked, a) {
			actions = append(actions, a)
		}
	}
	return actions, nil
}

var providerErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// ErrBindingMismatch refuses a state reached without its binding.
var ErrBindingMismatch = invalid("state_browser_mismatch",
	"This sign-in was started in another browser, or took too long; for your safety nothing was saved. Please start again from the release page.")

// CompleteConnect finishes a connection: it consumes the state (unknown,
// reused or expired: refused, nothing written), exchanges the code with
// the verifier, and records fan, account, sealed token, pre-save and
// consent in one transaction, then queues the pre-save if it is due
// soon. Nothing is written unless it succeeds.
//
// Every state completes only with the binding it was started with: an
// authorize link or a callback link carried to another browser is
// refused before the code is exchanged. That is what makes the state's
// fan (the one whose token came with the start) safe to attach the
// account to: whoever completes the callback is the client that proved
// to be that fan.
func (s *Service) CompleteConnect(ctx context.Context, req Callback) (Connection, CallbackState, error) {
	var info CallbackState
	p, err := s.Provider(req.Provider)
	if err != nil {
		return Connection{}, info, err
	}
	if req.State == "" {
		return Connection{}, info, invalid("state_invalid", "This sign-in link is incomplete; please start again.")
	}
	now := s.now()
	// The state's release comes with it, read by the same statement.
	st, r, serr := s.store.ConsumeOAuthStateRelease(ctx, req.State, now)
	if serr == nil {
		info = CallbackState{ViaPage: st.ViaPage, ReleaseID: st.ReleaseID}
	}
	if err := callbackRefusal(p, req, st, serr); err != nil {
		return Connection{}, info, err
	}
	if r.Status != store.ReleaseScheduled {
		return Connection{}, info, releaseNotOpen(r)
	}
	due, err := r.DueAt(st.FanZone)
	if err != nil {
		return Connection{}, info, err
	}
	grant, err := s.exchange(ctx, p, req.Code, st.Verifier)
	if err != nil {
		return Connection{}, info, err
	}
	if err := checkGrant(p, grant, due, now); err != nil {
		s.discardGrant(ctx, p, grant)
		return Connection{}, info, err
	}
	if err := s.appRoom(ctx, p, st.FanID, grant.AccountID); err != nil {
		s.discardGrant(ctx, p, grant)
		return Connection{}, info, err
	}
	out, err := s.recordConsent(ctx, p, req, st, r, grant, due, now)
	if err != nil {
		return Connection{}, info, err
	}
	return out, info, nil
}

// callbackRefusal is the refusal of a callback that cannot go on: the
// fan's "no", a provider error, a bad or spent state, a state of another
// provider or client, no code.
func callbackRefusal(p providers.Provider, req Callback, st store.OAuthState, serr error) error {
	if req.Error != "" {
		// The state is spent either way; the fan's answer matters more
		// than whether it was still valid.
		if req.Error == "access_denied" {
			return errorf(KindDeclined, "consent_denied", "You declined on %s, so nothing was saved. You can start again at any time.", p.Name())
		}
		code := "unknown"
		if providerErrorCode.MatchString(req.Error) {
			code = req.Error
		}
		return errorf(KindProvider, "provider_error", "%s answered with the error %q; nothing was saved. Please start again.", p.Name(), code)
	}
	switch {
	case errors.Is(serr, store.ErrStateExpired):
		return invalid("state_expired", "This sign-in took longer than %d minutes; please start again.", int(StateTTL/time.Minute))
	case errors.Is(serr, store.ErrNotFound):
		return invalid("state_invalid", "This sign-in link is unknown or was already used; please start again.")
	case serr != nil:
		return serr
	case st.Provider != p.Name():
		return invalid("state_invalid", "This sign-in link belongs to another provider; please start again.")
	case !st.BoundTo(req.Binding):
		// Checked before the code is exchanged: nothing is written and
		// the grant stays unused at the provider.
		return ErrBindingMismatch
	case req.Code == "":
		return invalid("code_missing", "%s sent no authorization code; please start again.", p.Name())
	}
	return nil
}

// exchange trades the code for a grant, classifying the provider's
// refusal or failure.
func (s *Service) exchange(ctx context.Context, p providers.Provider, code, verifier string) (providers.Grant, error) {
	grant, err := p.Exchange(ctx, code, verifier)
	if err != nil {
		switch providers.ClassOf(err) {
		case providers.GrantInvalid, providers.Permanent:
			msg := "The authorization code was refused (expired or already used); please start again."
			if !p.Name().HasAccountID() {
				// Apple Music: the "code" is MusicKit's user token.
				msg = p.Name().Label() + " did not accept the authorization (it may have been withdrawn); nothing was saved. Please start again."
			}
			return grant, &Error{Kind: KindInvalid, Code: "code_invalid", Err: err, Message: msg}
		}
		return grant, &Error{Kind: KindProvider, Code: "provider_unavailable", Err: err,
			Message: "We could not reach " + string(p.Name()) + "; nothing was saved. Please try again in a moment."}
	}
	if grant.Token == nil || grant.Token.RefreshToken == "" || (grant.AccountID == "") == p.Name().HasAccountID() {
		return grant, errorf(KindProvider, "provider_error", "%s did not grant lasting access; nothing was saved. Please start again.", p.Name())
	}
	return grant, nil
}

// checkGrant refuses a grant we cannot store (text PostgreSQL cannot
// hold) or use (a Spotify grant that expires before the release).
func checkGrant(p providers.Provider, g providers.Grant, due, now time.Time) error {
	if !Storable(g.AccountID) {
		return providerText(p, "the account ID")
	}
	for _, sc := range g.Scopes {
		if !Storable(sc) {
			return providerText(p, "a granted scope")
		}
	}
	return grantHorizon(p, due, now)
}

func providerText(p providers.Provider, field string) *Error {
	return errorf(KindProvider, "provider_invalid_text",
		"%s sent a value for %s that we cannot store (not valid UTF-8, or a NUL character); nothing was saved. Please try again later.", p.Name(), field)
}

// recordConsent stores the consent (fan, account, sealed token,
// pre-save) and queues the pre-save when it is due soon.
func (s *Service) recordConsent(ctx context.Context, p providers.Provider, req Callback, st store.OAuthState, r store.Release,
	grant providers.Grant, due, now time.Time) (Connection, error) {
	// A fan who came back with their own token keeps it: no new session.
	var reuse string
	if req.FanToken != "" && st.FanID != uuid.Nil {
		if id, err := s.store.FanByToken(ctx, req.FanToken); err == nil && id == st.FanID {
			reuse = req.FanToken
		}
	}
	c := store.Consent{
		FanID: st.FanID, Provider: p.Name(), AccountID: grant.AccountID,
		Token: store.Token{
			RefreshToken: grant.Token.RefreshToken, AccessToken: grant.Token.AccessToken, Expiry: grant.Token.Expiry,
			Scopes: grant.Scopes, AuthorizedAt: now, Storefront: grant.Storefront,
		},
		ReleaseID: r.ID, Actions: st.Actions, ConsentedAt: now, ConsentVersion: st.ConsentVersion,
		ConsentLocale: st.ConsentLocale,
		FanZone:       st.FanZone, ClientIPPrefix: st.ClientIPPrefix, DueAt: due,
		// Due soon (queue's rule): recorded as enqueued in the consent
		// transaction itself and queued right after it, which spares
		// queue.Client.Schedule's separate UPDATE.
		Enqueue:          s.queue.DueSoon(due),
		ReleaseUpdatedAt: r.UpdatedAt,
	}
	newToken := NewToken
	if reuse != "" {
		newToken = nil
	}
	out, err := s.store.RecordConsent(ctx, c, newToken)
	if errors.Is(err, store.ErrAccountTaken) {
		// The provider account already belongs to another fan. Whoever
		// just proved control of it is that fan: record it there, with a
		// token for that fan.
		c.FanID, reuse = uuid.Nil, ""
		out, err = s.store.RecordConsent(ctx, c, NewToken)
	}
	switch {
	case errors.Is(err, store.ErrReleaseChanged):
		s.discardGrant(ctx, p, grant)
		return Connection{}, errorf(KindConflict, "release_changed",
			"The release was cancelled or rescheduled while you were connecting; nothing was saved. Please start again.")
	case errors.Is(err, store.ErrOtherAccount):
		s.discardGrant(ctx, p, grant)
		return Connection{}, errorf(KindConflict, "other_account_connected",
			"Your pending pre-saves on %s use another %s account; nothing was saved. Sign in with that account, or disconnect %s first (your pre-saves there are then withdrawn).",
			p.Name(), p.Name(), p.Name())
	case err != nil:
		return Connection{}, err
	}
	res := Connection{FanID: out.FanID, FanToken: out.FanToken, NewFan: out.FanCreated, Presave: out.Presave}
	if reuse != "" {
		res.FanToken = reuse
	}
	res.Queued = s.queueConsented(ctx, out.Presave)
	return res, nil
}

// queueConsented drops the task a repeated consent superseded and queues
// a pre-save the consent recorded as enqueued, reporting whether it did.
func (s *Service) queueConsented(ctx context.Context, ps store.Presave) bool {
	if ps.Generation > 1 {
		// A repeated consent bumped the generation: the old task is stale.
		if err := s.queue.DropPresaveTask(ps.ID, ps.Generation-1, ps.Provider); err != nil {
			s.log.WarnContext(ctx, "dropping a superseded pre-save task", "presave_id", ps.ID, "err", err)
		}
	}
	if ps.Status != store.PresaveEnqueued {
		return false
	}
	d := store.DuePresave{ID: ps.ID, Generation: ps.Generation, Provider: ps.Provider, DueAt: ps.DueAt, FanID: ps.FanID}
	if _, err := s.queue.Enqueue(ctx, d); err != nil {
		// Recorded as enqueued in PostgreSQL; the relay's rescue queues
		// enqueued pre-saves that have no task.
		s.log.WarnContext(ctx, "queueing a new pre-save; the relay will queue it", "presave_id", ps.ID, "err", err)
		return false
	}
	return true
}

// discardGrant revokes, where the provider allows, a grant just obtained
// for a connection that was then refused: nothing was stored, so nothing
// of ours may keep working at the provider either. Best effort: the
// refusal stands whatever the provider answers.
func (s *Service) discardGrant(ctx context.Context, p providers.Provider, g providers.Grant) {
	if g.Token == nil || g.Token.RefreshToken == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.Revoke(rctx, g.Token.RefreshToken); err != nil && !errors.Is(err, providers.ErrRevokeUnsupported) {
		s.log.WarnContext(ctx, "revoking the grant of a refused connection", "provider", p.Name(), "err", err)
	}
}
