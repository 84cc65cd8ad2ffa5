// Package youtube implements providers.Provider for YouTube, through
// google.golang.org/api/youtube/v3 over an OAuth client, with the OpenID
// ID token of the code exchange (or userinfo) for the account ID ("sub"
// only) and Google's revoke endpoint. Every error leaves this package as
// a classified *providers.Error.
package youtube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // quota resets at midnight America/Los_Angeles wherever we run

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	yt "google.golang.org/api/youtube/v3"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

// Scopes presave requests: "openid" for the account's "sub", and the
// YouTube scope that rating videos and editing playlists need. Nothing
// else: no e-mail, no profile.
const (
	ScopeOpenID  = "openid"
	ScopeYouTube = "https://www.googleapis.com/auth/youtube"
)

// Quota units of the YouTube Data API calls presave makes.
const (
	CostRead  = 1  // videos.getRating, subscriptions.list, playlists.list, playlistItems.list
	CostWrite = 50 // videos.rate, subscriptions.insert, playlists.insert, playlistItems.insert
)

// Config configures the YouTube provider. Empty URLs default to Google's.
type Config struct {
	ClientID     string
	ClientSecret string
	RedirectURL  string
	AuthURL      string // default https://accounts.google.com/o/oauth2/auth
	TokenURL     string // default https://oauth2.googleapis.com/token
	RevokeURL    string // default https://oauth2.googleapis.com/revoke
	UserinfoURL  string // default https://openidconnect.googleapis.com/v1/userinfo
	APIURL       string // default https://youtube.googleapis.com/
	// Testing: the Google OAuth app is in "Testing" publishing status,
	// whose refresh tokens stop working after 7 days.
	Testing bool
	// TestingDeclared is true when the operator set Testing either way
	// (GOOGLE_APP_TESTING) rather than leaving presave's default.
	TestingDeclared bool
	// HTTPClient is the base client for every call (default: 30s timeout).
	HTTPClient *http.Client
}

// Provider is YouTube. Create it with New.
type Provider struct {
	cfg   Config
	oauth *oauth2.Config
	base  *http.Client
}

var _ providers.Provider = (*Provider)(nil)

func def(v *string, d string) {
	if *v == "" {
		*v = d
	}
}

// New returns the YouTube provider.
func New(cfg Config) *Provider {
	def(&cfg.AuthURL, "https://accounts.google.com/o/oauth2/auth")
	def(&cfg.TokenURL, "https://oauth2.googleapis.com/token")
	def(&cfg.RevokeURL, "https://oauth2.googleapis.com/revoke")
	def(&cfg.UserinfoURL, "https://openidconnect.googleapis.com/v1/userinfo")
	def(&cfg.APIURL, "https://youtube.googleapis.com/")
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	return &Provider{
		cfg:  cfg,
		base: oauthx.BaseClient(cfg.HTTPClient),
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{
				AuthURL:   cfg.AuthURL,
				TokenURL:  cfg.TokenURL,
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
	}
}

// Name implements providers.Provider.
func (p *Provider) Name() providers.Name { return providers.YouTube }

// Actions implements providers.Provider.
func (p *Provider) Actions(t providers.Target) []providers.Action {
	var out []providers.Action
	if t.VideoID != "" {
		out = append(out, providers.ActionLike)
	}
	if t.ChannelID != "" {
		out = append(out, providers.ActionSubscribe)
	}
	if t.VideoID != "" && t.MyPlaylist.Name != "" {
		out = append(out, providers.ActionAddToMyPlaylist)
	}
	return out
}

// Scopes implements providers.Provider: every YouTube action (rating,
// subscribing, creating and editing the fan's playlist) needs the youtube
// scope (YouTube Data API reference, each method's "Authorization").
func (p *Provider) Scopes(actions []providers.Action) []string {
	out := []string{ScopeOpenID}
	for _, a := range actions {
		if a == providers.ActionLike || a == providers.ActionSubscribe || a == providers.ActionAddToMyPlaylist {
			return append(out, ScopeYouTube)
		}
	}
	return out
}

// AuthCodeURL implements providers.Provider. It asks for offline access
// (a refresh token) and forces the consent screen (prompt=consent):
// without it Google omits the refresh token on a second authorization,
// and an approved fan would be sent back without seeing anything, so a
// flow the fan did not start could complete unnoticed.
func (p *Provider) AuthCodeURL(state, verifier string, scopes []string) string {
	// The scopes go in as a parameter: copying p.oauth to set its Scopes
	// would race with a concurrent Exchange, which updates the config's
	// auth-style cache.
	return p.oauth.AuthCodeURL(state, oauth2.SetAuthURLParam("scope", strings.Join(scopes, " ")), oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier))
}

// QuotaCost implements providers.Provider, from the Data API's quota
// table: a like or a subscription is one write, unchecked (videos.rate,
// subscriptions.insert: 50 units; a duplicate subscription is counted
// as spent, since Google charges a request that fails too).
// add_to_my_playlist counts OwnPlaylist's calls with its own, as an
// upper bound: a page of the fan's playlists (1) and the playlist's
// creation (50), then playlistItems.list (1) and playlistItems.insert
// (50); when it was already in effect, the two reads.
func (p *Provider) QuotaCost(a providers.Action, out providers.Outcome) int {
	switch a {
	case providers.ActionLike, providers.ActionSubscribe:
		return CostWrite
	case providers.ActionAddToMyPlaylist:
		if out == providers.OutcomeAlready {
			return 2 * CostRead
		}
		return 2 * (CostRead + CostWrite)
	}
	return 0
}

// Calls implements providers.Provider: a like or a subscription is one
// write; add_to_my_playlist checks, writes at most once, and finds or
// creates the fan's playlist first (a page of playlists.list,
// playlists.insert) unless t names it.
func (p *Provider) Calls(a providers.Action, t providers.Target) int {
	switch {
	case a == providers.ActionAddToMyPlaylist && t.MyPlaylist.ID == "":
		return 4
	case a == providers.ActionAddToMyPlaylist:
		return 2
	}
	return 1
}

// TestingGrantLifetime is how long a refresh token of a Google OAuth app
// in "Testing" status lasts ("A Google Cloud Platform project with an
// OAuth consent screen configured for an external user type and a
// publishing status of 'Testing' is issued a refresh token expiring in
// 7 days").
const TestingGrantLifetime = 7 * 24 * time.Hour

// TestingUsers is how many users an app in "Testing" serves: "Projects
// configured with a publishing status of Testing are limited to up to 100
// test users listed in the OAuth consent screen" (Google Cloud, "Manage
// App Audience").
const TestingUsers = 100

// App statuses, as the Google Cloud console's "Publishing status" names them.
const (
	AppTesting    = "testing"
	AppProduction = "in production"
)

// App implements providers.Provider.
func (p *Provider) App() providers.App {
	if p.cfg.Testing {
		return providers.App{Status: AppTesting, MaxUsers: TestingUsers, Declared: p.cfg.TestingDeclared}
	}
	return providers.App{Status: AppProduction, Declared: p.cfg.TestingDeclared}
}

// CheckApp implements providers.Provider by exchanging an authorization
// code that cannot exist: Google's token endpoint answers
// "invalid_client" when the client ID or secret is wrong and
// "invalid_grant" when they are right and only the code is (RFC 6749
// section 5.2, the errors its OAuth 2.0 web server guide lists). No user
// is involved and nothing is granted.
func (p *Provider) CheckApp(ctx context.Context) error {
	_, err := p.oauth.Exchange(oauthx.WithBase(ctx, p.base), "presave-preflight-no-such-code")
	if err == nil {
		return &providers.Error{Provider: providers.YouTube, Op: "app", Class: providers.Permanent, Reason: "code_accepted",
			Err: errors.New("the token endpoint accepted a made-up code: GOOGLE_TOKEN_URL is not Google's")}
	}
	e := classify("app", err)
	if pe, ok := providers.AsError(e); ok && pe.Reason == "invalid_grant" {
		return nil
	}
	return e
}

// GrantExpiry implements providers.Provider: Google's refresh tokens of
// a published app have no fixed lifetime (they end when revoked, unused
// for six months, or replaced by too many newer ones); a "Testing" app's
// (Config.Testing) expire TestingGrantLifetime after the authorization.
func (p *Provider) GrantExpiry(authorizedAt time.Time) time.Time {
	if p.cfg.Testing {
		return authorizedAt.Add(TestingGrantLifetime)
	}
	return time.Time{}
}

// Exchange implements providers.Provider.
func (p *Provider) Exchange(ctx context.Context, code, verifier string) (providers.Grant, error) {
	tok, err := p.oauth.Exchange(oauthx.WithBase(ctx, p.base), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return providers.Grant{}, classify("exchange", err)
	}
	sub, ok := p.idTokenSubject(tok, time.Now())
	if !ok {
		hc := oauthx.NewClient(oauthx.NewSource(p.oauth, p.base, tok, nil), p.base)
		if sub, err = p.subject(ctx, hc); err != nil {
			return providers.Grant{}, classify("account", err)
		}
	}
	var scopes []string
	if s, ok := tok.Extra("scope").(string); ok {
		scopes = strings.Fields(s)
	}
	return providers.Grant{Token: tok, AccountID: sub, Scopes: scopes}, nil
}

// googleIssuers are the "iss" values Google's ID tokens carry.
var googleIssuers = []string{"https://accounts.google.com", "accounts.google.com"}

// idTokenSubject reads the account's "sub" from the ID token that came
// with the code exchange, which spares a userinfo request per consent.
// The token came straight from the token endpoint over TLS in answer to
// our own authenticated exchange, so, as OpenID Connect Core 3.1.3.7
// allows, TLS stands in for checking its signature; the issuer, the
// audience (our client ID) and the expiry are checked. Anything missing
// or off, and the caller asks userinfo, as before.
func (p *Provider) idTokenSubject(tok *oauth2.Token, now time.Time) (string, bool) {
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Azp string          `json:"azp"`
		Sub string          `json:"sub"`
		Exp int64           `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", false
	}
	// "aud" is a string, or an array holding our client ID.
	var auds []string
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(c.Aud, &auds) != nil {
		return "", false
	}
	// OpenID Connect Core 3.1.3.7: with several audiences "azp" must be
	// present, and when present it must be our client ID.
	if (len(auds) > 1 || c.Azp != "") && c.Azp != p.oauth.ClientID {
		return "", false
	}
	if c.Sub == "" || !slices.Contains(googleIssuers, c.Iss) || !slices.Contains(auds, p.oauth.ClientID) ||
		!now.Before(time.Unix(c.Exp, 0).Add(time.Minute)) {
		return "", false
	}
	return c.Sub, true
}

// subject reads the OpenID "sub" from userinfo, and nothing else.
func (p *Provider) subject(ctx context.Context, hc *http.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.UserinfoURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return "", googleapi.CheckResponseWithBody(resp, body)
	}
	var info struct {
		Sub string `json:"sub"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("youtube: decode userinfo: %w", err)
	}
	if info.Sub == "" {
		return "", &providers.Error{Provider: providers.YouTube, Op: "account", Class: providers.Permanent, Reason: "no_sub", Account: true}
	}
	return info.Sub, nil
}

// Revoke implements providers.Provider. A token Google no longer knows
// ("invalid_token") counts as revoked: the purge wanted exactly that.
func (p *Provider) Revoke(ctx context.Context, refreshToken string) error {
	form := url.Values{"token": {refreshToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.RevokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return classify("revoke", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.base.Do(req)
	if err != nil {
		// *url.Error carries the revoke URL only; the token is in the body.
		return classify("revoke", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var oe struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &oe)
	// Google answers 400 invalid_token for a token it does not know: the
	// fan revoked it, it expired, or an earlier attempt of ours revoked it
	// already (a crash between revoking and deleting our row).
	if resp.StatusCode == http.StatusBadRequest && (oe.Error == "invalid_token" || oe.Error == "invalid_grant") {
		return providers.ErrAlreadyRevoked
	}
	e := &providers.Error{Provider: providers.YouTube, Op: "revoke", Status: resp.StatusCode, Reason: oe.Error}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Class, e.RetryAfter = providers.RateLimited, oauthx.RetryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode >= 500:
		e.Class = providers.Retryable
	default:
		e.Class = providers.Permanent
	}
	return e
}

// Client implements providers.Provider. Refreshes run within the context
// of the call that needs them.
func (p *Provider) Client(ctx context.Context, tok *oauth2.Token, onRefresh func(*oauth2.Token)) providers.Client {
	src := oauthx.NewSource(p.oauth, p.base, tok, onRefresh)
	hc := oauthx.NewClient(src, p.base)
	svc, err := yt.NewService(ctx, option.WithHTTPClient(hc), option.WithEndpoint(p.cfg.APIURL))
	return &client{src: src, svc: svc, err: err}
}

type client struct {
	src *oauthx.Source
	svc *yt.Service
	err error // from NewService (it only fails on bad options)
}

// call runs fn, and once more after a forced refresh if Google answered
// 401 (the access token died early); errors come back classified.
func (c *client) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if c.err != nil {
		return &providers.Error{Provider: providers.YouTube, Op: op, Class: providers.Permanent, Reason: "client_setup", Err: c.err}
	}
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var ge *googleapi.Error
		if errors.As(err, &ge) && ge.Code == http.StatusUnauthorized && attempt == 0 && reasonOf(ge) != ReasonSignupRequired {
			c.src.Invalidate()
			continue
		}
		return classify(op, err)
	}
}

// Perform implements providers.Client. A like is written without a
// check (videos.rate sets the rating: rating a liked video "like" again
// changes nothing), and so is a subscription (subscriptions.insert of an
// existing one answers 400 subscriptionDuplicate, which is "already"):
// a check would cost a request and a unit and prevent nothing. Adding to
// the fan's playlist checks first: an insert appends a duplicate.
func (c *client) Perform(ctx context.Context, a providers.Action, t providers.Target) (providers.Outcome, error) {
	var out providers.Outcome
	err := c.call(ctx, string(a), func(ctx context.Context) error {
		if a == providers.ActionAddToMyPlaylist {
			done, err := c.inEffect(ctx, a, t)
			if err != nil {
				return err
			}
			if done {
				out = providers.OutcomeAlready
				return nil
			}
		}
		already, err := c.write(ctx, a, t)
		if err != nil {
			return err
		}
		out = providers.OutcomeOK
		if already {
			out = providers.OutcomeAlready
		}
		return nil
	})
	return out, err
}

// InEffect implements providers.Client.
func (c *client) InEffect(ctx context.Context, a providers.Action, t providers.Target) (bool, error) {
	var done bool
	err := c.call(ctx, string(a), func(ctx context.Context) error {
		var err error
		done, err = c.inEffect(ctx, a, t)
		return err
	})
	return done, err
}

func badTarget(a providers.Action, reason string) error {
	return &providers.Error{Provider: providers.YouTube, Op: string(a), Class: providers.Permanent, Reason: reason}
}

func (c *client) inEffect(ctx context.Context, a providers.Action, t providers.Target) (bool, error) {
	switch a {
	case providers.ActionLike:
		if t.VideoID == "" {
			return false, badTarget(a, "empty_target")
		}
		res, err := c.svc.Videos.GetRating([]string{t.VideoID}).Context(ctx).Do()
		if err != nil {
			return false, err
		}
		for _, r := range res.Items {
			if r.VideoId == t.VideoID && r.Rating == "like" {
				return true, nil
			}
		}
		return false, nil
	case providers.ActionSubscribe:
		if t.ChannelID == "" {
			return false, badTarget(a, "empty_target")
		}
		// forChannelId narrows the fan's subscriptions to this channel:
		// one read unit however many the fan has.
		res, err := c.svc.Subscriptions.List([]string{"id"}).Mine(true).ForChannelId(t.ChannelID).
			MaxResults(1).Context(ctx).Do()
		if err != nil {
			return false, err
		}
		return len(res.Items) > 0, nil
	case providers.ActionAddToMyPlaylist:
		if t.VideoID == "" || t.MyPlaylist.ID == "" {
			return false, badTarget(a, "empty_target")
		}
		// Filtered by videoId: one read unit, however long the playlist.
		res, err := c.svc.PlaylistItems.List([]string{"id"}).PlaylistId(t.MyPlaylist.ID).
			VideoId(t.VideoID).MaxResults(1).Context(ctx).Do()
		if err != nil {
			return false, err
		}
		return len(res.Items) > 0, nil
	}
	return false, badTarget(a, "unsupported_action")
}

// write performs a's write; already reports a subscription that existed.
func (c *client) write(ctx context.Context, a providers.Action, t providers.Target) (already bool, err error) {
	switch a {
	case providers.ActionLike:
		if t.VideoID == "" {
			return false, badTarget(a, "empty_target")
		}
		return false, c.svc.Videos.Rate(t.VideoID, "like").Context(ctx).Do()
	case providers.ActionSubscribe:
		if t.ChannelID == "" {
			return false, badTarget(a, "empty_target")
		}
		_, err := c.svc.Subscriptions.Insert([]string{"snippet"}, &yt.Subscription{
			Snippet: &yt.SubscriptionSnippet{ResourceId: &yt.ResourceId{Kind: "youtube#channel", ChannelId: t.ChannelID}},
		}).Context(ctx).Do()
		var ge *googleapi.Error
		if errors.As(err, &ge) && reasonOf(ge) == "subscriptionDuplicate" {
			return true, nil
		}
		return false, err
	case providers.ActionAddToMyPlaylist:
		_, err := c.svc.PlaylistItems.Insert([]string{"snippet"}, &yt.PlaylistItem{
			Snippet: &yt.PlaylistItemSnippet{
				PlaylistId: t.MyPlaylist.ID,
				ResourceId: &yt.ResourceId{Kind: "youtube#video", VideoId: t.VideoID},
			},
		}).Context(ctx).Do()
		return false, err
	}
	return false, badTarget(a, "unsupported_action")
}

// OwnPlaylist implements providers.Client: it pages through the fan's
// playlists (playlists.list mine=true, 50 a page, 1 unit each) for the
// release's marker, and creates a private playlist when none has it
// (playlists.insert, 50 units).
func (c *client) OwnPlaylist(ctx context.Context, t providers.Target) (string, error) {
	if t.MyPlaylist.ID != "" {
		return t.MyPlaylist.ID, nil
	}
	a := providers.ActionAddToMyPlaylist
	if t.MyPlaylist.Name == "" || t.MyPlaylist.Key == "" {
		return "", badTarget(a, "empty_target")
	}
	marker := providers.PlaylistMarker(t.MyPlaylist.Key)
	var id string
	err := c.call(ctx, string(a), func(ctx context.Context) error {
		page := ""
		for {
			res, err := c.svc.Playlists.List([]string{"snippet"}).Mine(true).MaxResults(50).PageToken(page).Context(ctx).Do()
			if err != nil {
				return err
			}
			for _, pl := range res.Items {
				if pl.Snippet != nil && strings.Contains(pl.Snippet.Description, marker) {
					id = pl.Id
					return nil
				}
			}
			if page = res.NextPageToken; page == "" {
				break
			}
		}
		pl, err := c.svc.Playlists.Insert([]string{"snippet", "status"}, &yt.Playlist{
			Snippet: &yt.PlaylistSnippet{Title: t.MyPlaylist.Name, Description: t.MyPlaylist.FullDescription()},
			Status:  &yt.PlaylistStatus{PrivacyStatus: "private"},
		}).Context(ctx).Do()
		if err != nil {
			return err
		}
		id = pl.Id
		return nil
	})
	return id, err
}

// Google's reason for a Google account without a YouTube channel, and
// the reason presave records for it.
const (
	ReasonSignupRequired = "youtubeSignupRequired"
	ReasonNoChannel      = "youtube_channel_required"
)

// reasonOf is the first error reason of a Google API error.
func reasonOf(ge *googleapi.Error) string {
	if len(ge.Errors) > 0 {
		return ge.Errors[0].Reason
	}
	return ""
}

var pacific = func() *time.Location {
	l, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		panic(err) // time/tzdata is embedded: cannot happen
	}
	return l
}()

// NextQuotaReset is when the YouTube daily quota next resets after t:
// midnight Pacific time.
func NextQuotaReset(t time.Time) time.Time {
	lt := t.In(pacific)
	return time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, pacific)
}

// QuotaDay implements providers.Provider: YouTube's quota day is the
// Pacific calendar day, ending at the next Pacific midnight.
func (p *Provider) QuotaDay(t time.Time) (string, time.Time) {
	end := NextQuotaReset(t)
	return end.Add(-time.Hour).In(pacific).Format(time.DateOnly), end
}

// classify turns any error into a *providers.Error.
//
// Judgement on 404: videoNotFound means the release's video is not public
// yet (NotLiveYet, retry later); playlistNotFound (the fan's playlist is
// gone) and publisherNotFound (no such channel) will not change by
// waiting (Permanent).
func classify(op string, err error) error {
	if pe, ok := providers.AsError(err); ok {
		return pe
	}
	e := &providers.Error{Provider: providers.YouTube, Op: op, Err: err}
	// Token endpoint failures first: they arrive inside *url.Error, which
	// would otherwise pass for a network error.
	if oauthx.ClassifyTokenEndpoint(e, err) {
		return e
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) {
			e.Class = providers.Retryable
		} else {
			e.Class = providers.Permanent
		}
		return e
	}
	// The googleapi message is Google's text; drop the raw body from view.
	e.Err = &oauthx.Quiet{Msg: "youtube api: " + ge.Message, Err: err}
	e.Status = ge.Code
	e.Reason = reasonOf(ge)
	switch {
	case e.Reason == "quotaExceeded" || e.Reason == "dailyLimitExceeded":
		e.Class, e.ResetAt = providers.QuotaExhausted, NextQuotaReset(time.Now())
	case e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded" || ge.Code == http.StatusTooManyRequests:
		// Google sends these as 403 (domain usageLimits) without a
		// Retry-After: RetryAfter stays 0 and the worker backs off.
		e.Class, e.RetryAfter = providers.RateLimited, oauthx.RetryAfter(ge.Header.Get("Retry-After"))
	case e.Reason == ReasonSignupRequired:
		// The Google account has no YouTube channel: reconnecting the
		// same account cannot fix it.
		e.Class, e.Reason, e.Account = providers.Permanent, ReasonNoChannel, true
	case ge.Code == http.StatusUnauthorized:
		// Still 401 after a forced refresh.
		e.Class = providers.GrantInvalid
	case e.Reason == "playlistNotFound" || e.Reason == "publisherNotFound":
		// The fan's own playlist is gone, or the artist's channel does
		// not exist: waiting will not fix either.
		e.Class = providers.Permanent
	case ge.Code == http.StatusNotFound:
		e.Class = providers.NotLiveYet
	case ge.Code >= 500:
		e.Class = providers.Retryable
	default:
		// forbidden, videoRatingDisabled, playlistContainsMaximumNumberOfVideos,
		// insufficientPermissions and any other 4xx.
		e.Class = providers.Permanent
	}
	return e
}
