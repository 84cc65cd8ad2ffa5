// Package apiclient is a typed client of presave's HTTP API, as the demo,
// the benchmark, the reliability suite and the tests play it: an operator
// creating and moving releases, fans connecting through the fake
// provider's consent screen. It talks HTTP only.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/presave/presave/internal/wire"

	"github.com/presave/presave/internal/providers/fake"
)

// RequestTimeout bounds each HTTP request these helpers make when the
// caller's context has no earlier deadline.
const RequestTimeout = 30 * time.Second

// NewHTTPClient returns a client sized for parallel fans talking to one
// API on loopback: enough idle connections per host that a burst of
// parallel requests reuses them instead of exhausting ephemeral ports.
func NewHTTPClient(parallel int) *http.Client {
	if parallel < 2 {
		parallel = 2
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback only; never route through a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * parallel,
		MaxIdleConnsPerHost: 2 * parallel,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: RequestTimeout}
}

// HTTPError is a non-2xx answer: the request, the status and, when the
// body is the API's error shape {"error":{"code","message"}}, its code and
// message. Check it with errors.As.
type HTTPError struct {
	Method  string
	URL     string // without its query: a callback's query holds a code and a state
	Status  int
	Code    string
	Message string
	// RetryAfter is the Retry-After header, when the answer had one.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether the request may be retried as is: rate
// limited or the server briefly unavailable.
func (e *HTTPError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable ||
		e.Status == http.StatusBadGateway || e.Status == http.StatusGatewayTimeout
}

// Redact drops a URL's query and fragment so an error message never
// carries a code or a state.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

func httpError(req *http.Request, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &HTTPError{Method: req.Method, URL: Redact(req.URL.String()), Status: resp.StatusCode}
	var api struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &api) == nil && api.Error.Code != "" {
		e.Code, e.Message = api.Error.Code, api.Error.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}

// withDeadline gives ctx a deadline of RequestTimeout unless it has an
// earlier one.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < RequestTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, RequestTimeout)
}

// doJSON sends body (JSON unless nil) and decodes a 2xx answer into out
// (unless nil). A non-2xx answer is an *HTTPError.
func doJSON(ctx context.Context, hc *http.Client, method, rawURL, bearer string, body, out any) error {
	_, err := doJSONCookies(ctx, hc, method, rawURL, bearer, nil, body, out)
	return err
}

// doJSONCookies is doJSON that sends cookies and returns the ones the
// answer sets (the connect flow's binding cookie), for a client without
// a cookie jar.
func doJSONCookies(ctx context.Context, hc *http.Client, method, rawURL, bearer string, cookies []*http.Cookie, body, out any) ([]*http.Cookie, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case url.Values:
		// A form, as a page posts it.
		rd, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		enc, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("cluster: encode %s %s: %w", method, Redact(rawURL), err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s %s: %w", method, Redact(rawURL), err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The *url.Error would quote the full URL: rebuild it without the query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cluster: %s %s: %w", method, Redact(rawURL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, httpError(req, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Cookies(), nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("cluster: %s %s: decode answer: %w", method, Redact(rawURL), err)
	}
	return resp.Cookies(), nil
}

// CreateRelease creates a release as the operator. body is a ReleaseSpec
// or anything that marshals to the API's JSON.
func CreateRelease(ctx context.Context, hc *http.Client, apiURL, adminToken string, body any) (wire.Release, error) {
	var r wire.Release
	if err := doJSON(ctx, hc, http.MethodPost, strings.TrimRight(apiURL, "/")+"/v1/releases", adminToken, body, &r); err != nil {
		return wire.Release{}, fmt.Errorf("create release: %w", err)
	}
	return r, nil
}

// UpdateRelease patches a release (absent fields keep their value), e.g.
// map[string]any{"release_at": t} to move it.
func UpdateRelease(ctx context.Context, hc *http.Client, apiURL, adminToken, id string, body any) (wire.Release, error) {
	var r wire.Release
	u := strings.TrimRight(apiURL, "/") + "/v1/releases/" + url.PathEscape(id)
	if err := doJSON(ctx, hc, http.MethodPatch, u, adminToken, body, &r); err != nil {
		return wire.Release{}, fmt.Errorf("update release: %w", err)
	}
	return r, nil
}

// ResumeRelease posts /v1/releases/{id}/resume (provider "" resumes every
// paused provider).
func ResumeRelease(ctx context.Context, hc *http.Client, apiURL, adminToken, id, provider string) (wire.Release, error) {
	var r wire.Release
	u := strings.TrimRight(apiURL, "/") + "/v1/releases/" + url.PathEscape(id) + "/resume"
	if err := doJSON(ctx, hc, http.MethodPost, u, adminToken, wire.Resume{Provider: provider}, &r); err != nil {
		return wire.Release{}, fmt.Errorf("resume release: %w", err)
	}
	return r, nil
}

// GetRelease reads a release with its pre-save counts.
func GetRelease(ctx context.Context, hc *http.Client, apiURL, adminToken, id string) (wire.Release, error) {
	var r wire.Release
	u := strings.TrimRight(apiURL, "/") + "/v1/releases/" + url.PathEscape(id)
	if err := doJSON(ctx, hc, http.MethodGet, u, adminToken, nil, &r); err != nil {
		return wire.Release{}, fmt.Errorf("get release: %w", err)
	}
	return r, nil
}

// ConnectResult is what a fan gets back from the callback.
type ConnectResult struct {
	// FanToken is the fan's self-service credential (a secret: never log it).
	FanToken  string
	FanID     string
	PresaveID string
	// DueAt is when the pre-save will run, when the answer says.
	DueAt time.Time
	// Raw is the callback's whole JSON answer.
	Raw json.RawMessage
}

// connectAttempts bounds the retries of the steps of Connect that are safe
// to repeat (start and the consent screen) when rate limited.
const connectAttempts = 5

// Connect plays one fan through the real flow: POST
// /v1/connect/{provider}/start for release (slug or ID) in zone with
// consent → GET the authorize URL on the fake as user, without following
// its redirect → GET our callback from the redirect's Location, as a
// browser would → the callback's JSON. hc must not carry cookies between
// fans (a nil Jar, the default).
func Connect(ctx context.Context, hc *http.Client, apiURL, provider, release, zone, user string) (ConnectResult, error) {
	return ConnectWith(ctx, hc, apiURL, ConnectRequest{Provider: provider, Release: release, Zone: zone, User: user})
}

// ConnectRequest is one fan's connection, for ConnectWith.
type ConnectRequest struct {
	Provider string // "spotify" or "youtube"
	Release  string // slug or ID
	Zone     string // IANA zone, e.g. "Europe/Paris"
	User     string // the fan's account ID at the fake
	// Storefront is an Apple Music fan's storefront ("us" when empty).
	Storefront string
	// Actions limits the consent to some of the release's actions; nil
	// means all of them.
	Actions []string
}

// ConnectWith is Connect with every option.
func ConnectWith(ctx context.Context, hc *http.Client, apiURL string, cr ConnectRequest) (ConnectResult, error) {
	callback, err := PrepareConsent(ctx, hc, apiURL, cr)
	if err != nil {
		return ConnectResult{}, err
	}
	res, err := FinishConsent(ctx, hc, callback)
	if err != nil {
		return ConnectResult{}, fmt.Errorf("connect %s as %s: %w", cr.Provider, cr.User, err)
	}
	return res, nil
}

// consent GETs the authorize URL without following the redirect and
// returns the redirect's Location.
func consent(ctx context.Context, hc *http.Client, authURL string) (string, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	noFollow.Jar = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", fmt.Errorf("authorize URL: %w", err)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("GET %s: %w", Redact(authURL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", httpError(req, resp)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("GET %s: redirect without a usable Location: %w", Redact(authURL), err)
	}
	if e := loc.Query().Get("error"); e != "" {
		return "", fmt.Errorf("consent screen answered error=%s", e)
	}
	return loc.String(), nil
}

// parseConnected reads the callback's answer. It accepts the fields at the
// top level or nested under "presave" / "fan", so a reshaped answer fails
// loudly only when the pre-save ID is really missing.
func parseConnected(raw json.RawMessage) (ConnectResult, error) {
	var v struct {
		FanToken  string    `json:"fan_token"`
		Token     string    `json:"token"`
		FanID     string    `json:"fan_id"`
		PresaveID string    `json:"presave_id"`
		DueAt     time.Time `json:"due_at"`
		Fan       *struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		} `json:"fan"`
		Presave *struct {
			ID    string    `json:"id"`
			FanID string    `json:"fan_id"`
			DueAt time.Time `json:"due_at"`
		} `json:"presave"`
		Presaves []struct {
			ID    string    `json:"id"`
			DueAt time.Time `json:"due_at"`
		} `json:"presaves"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return ConnectResult{}, fmt.Errorf("decode answer: %w", err)
	}
	r := ConnectResult{FanToken: v.FanToken, FanID: v.FanID, PresaveID: v.PresaveID, DueAt: v.DueAt, Raw: raw}
	if r.FanToken == "" {
		r.FanToken = v.Token
	}
	if v.Fan != nil {
		r.FanID = cmpOr(r.FanID, v.Fan.ID)
		r.FanToken = cmpOr(r.FanToken, v.Fan.Token)
	}
	if v.Presave != nil {
		r.PresaveID = cmpOr(r.PresaveID, v.Presave.ID)
		r.FanID = cmpOr(r.FanID, v.Presave.FanID)
		if r.DueAt.IsZero() {
			r.DueAt = v.Presave.DueAt
		}
	}
	if r.PresaveID == "" && len(v.Presaves) > 0 {
		r.PresaveID = v.Presaves[0].ID
		if r.DueAt.IsZero() {
			r.DueAt = v.Presaves[0].DueAt
		}
	}
	if r.PresaveID == "" {
		return r, errors.New("answer names no pre-save")
	}
	return r, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// retryTemporary runs f until it succeeds, fails for good, or has been
// tried connectAttempts times; rate-limited answers wait their
// Retry-After (at most 5 s) before the next try.
func retryTemporary(ctx context.Context, f func() error) error {
	var err error
	for i := range connectAttempts {
		if err = f(); err == nil {
			return nil
		}
		var he *HTTPError
		if !errors.As(err, &he) || !he.Temporary() {
			return err
		}
		wait := min(max(he.RetryAfter, time.Duration(i+1)*200*time.Millisecond), 5*time.Second)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
	return err
}

// fakeClient talks to the fake's control API; a state read of a large run
// is a few megabytes, hence the generous timeout.
var fakeClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

// FakeState reads the fake provider's state (GET /_fake/state).
func FakeState(ctx context.Context, fakeURL string) (fake.State, error) {
	var st fake.State
	if err := doJSON(ctx, fakeClient, http.MethodGet, strings.TrimRight(fakeURL, "/")+"/_fake/state", "", nil, &st); err != nil {
		return fake.State{}, fmt.Errorf("fake state: %w", err)
	}
	return st, nil
}

// FakeControl posts a fault-injection request to the fake, e.g.
// FakeControl(ctx, url, "faults", map[string]any{"provider": "spotify",
// "error_rate": 0.2}). path is relative to /_fake/.
func FakeControl(ctx context.Context, fakeURL, path string, body any) error {
	u := strings.TrimRight(fakeURL, "/") + "/_fake/" + strings.TrimLeft(path, "/")
	if err := doJSON(ctx, fakeClient, http.MethodPost, u, "", body, nil); err != nil {
		return fmt.Errorf("fake %s: %w", path, err)
	}
	return nil
}
