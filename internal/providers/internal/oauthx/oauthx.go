// Package oauthx holds the OAuth plumbing the Spotify and YouTube clients
// share: a token source that reports every refresh to the caller and can
// be forced to refresh after a 401, a transport that remembers the status,
// Retry-After and body of a failed response (zmb3/spotify drops them), and
// an error wrapper that keeps provider response bodies out of messages.
package oauthx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
)

// DefaultTimeout bounds every provider HTTP call when the caller did not
// supply its own *http.Client.
const DefaultTimeout = 30 * time.Second

// BaseClient returns c, or a client with DefaultTimeout when c is nil.
func BaseClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: DefaultTimeout}
}

// WithBase returns ctx carrying base as the HTTP client x/oauth2 uses for
// token endpoint calls (exchange, refresh).
func WithBase(ctx context.Context, base *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, base)
}

// Source is an oauth2.TokenSource that refreshes through conf when the
// access token expired (or after Invalidate) and calls onRefresh with every
// refreshed token. x/oauth2 keeps the old refresh token when the response
// carries none, so the token handed to onRefresh always holds the refresh
// token to store.
type Source struct {
	conf      *oauth2.Config
	base      *http.Client
	onRefresh func(*oauth2.Token)

	mu    sync.Mutex
	tok   *oauth2.Token
	stale bool // the provider rejected tok: refresh even if it looks valid
}

// NewSource returns a Source starting from tok; refreshes go through base.
func NewSource(conf *oauth2.Config, base *http.Client, tok *oauth2.Token, onRefresh func(*oauth2.Token)) *Source {
	t := *tok
	return &Source{conf: conf, base: base, onRefresh: onRefresh, tok: &t}
}

// Token returns a valid access token, refreshing it when needed.
func (s *Source) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// TokenContext is Token with a refresh bounded by ctx.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stale && s.tok.Valid() {
		return s.tok, nil
	}
	// A token with only a refresh token makes x/oauth2 refresh at once.
	nt, err := s.conf.TokenSource(WithBase(ctx, s.base), &oauth2.Token{RefreshToken: s.tok.RefreshToken}).Token()
	if err != nil {
		return nil, err
	}
	s.tok, s.stale = nt, false
	// Called under the lock so concurrent refreshes report in order.
	if s.onRefresh != nil {
		c := *nt
		s.onRefresh(&c)
	}
	return nt, nil
}

// Invalidate makes the next Token call refresh, whatever the expiry says:
// the provider answered 401, so the access token is dead.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

// Current returns a copy of the token the source holds now.
func (s *Source) Current() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := *s.tok
	return &t
}

// Transport authenticates requests with a Source, refreshing within the
// request's context (x/oauth2's Transport would refresh without one).
type Transport struct {
	Source *Source
	Base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.Source.TokenContext(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	tok.SetAuthHeader(r)
	return t.Base.RoundTrip(r)
}

// NewClient returns an HTTP client that authenticates with src, records
// failures for WithCapture, and sends through base's transport.
func NewClient(src *Source, base *http.Client) *http.Client {
	return &http.Client{
		Timeout:   base.Timeout,
		Transport: &Transport{Source: src, Base: Capture{Base: BaseTransport(base)}},
	}
}

// Failure is what Capture remembers about the last failed response.
type Failure struct {
	Status     int
	RetryAfter string // raw Retry-After header
	Body       []byte // at most 64 KiB
}

type captureKey struct{}

type captureBox struct {
	mu sync.Mutex
	f  Failure
}

// WithCapture returns a context under which the Capture transport records
// failed responses, and a function reading the last one recorded.
func WithCapture(ctx context.Context) (context.Context, func() Failure) {
	b := &captureBox{}
	return context.WithValue(ctx, captureKey{}, b), func() Failure {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.f
	}
}

// Capture is a RoundTripper recording, for requests whose context came from
// WithCapture, the status, Retry-After and body of responses >= 400. The
// body is put back so the library above still decodes it.
type Capture struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (c Capture) RoundTrip(req *http.Request) (*http.Response, error) {
	base := c.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	b, ok := req.Context().Value(captureKey{}).(*captureBox)
	if !ok {
		return resp, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	b.mu.Lock()
	b.f = Failure{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: body}
	b.mu.Unlock()
	return resp, nil
}

// BaseTransport returns base's transport, or http.DefaultTransport.
func BaseTransport(base *http.Client) http.RoundTripper {
	if base != nil && base.Transport != nil {
		return base.Transport
	}
	return http.DefaultTransport
}

// Quiet wraps err with a fixed message: provider bodies and URLs stay out
// of logs (errors.As still reaches err).
type Quiet struct {
	Msg string
	Err error
}

func (q *Quiet) Error() string { return q.Msg }
func (q *Quiet) Unwrap() error { return q.Err }

// RetrieveError returns the *oauth2.RetrieveError in err's chain, if any.
func RetrieveError(err error) (*oauth2.RetrieveError, bool) {
	var re *oauth2.RetrieveError
	ok := errors.As(err, &re)
	return re, ok
}

// RetryAfter parses a Retry-After header (seconds or an HTTP date); 0
// when it is absent or unreadable: the provider named no wait, and the
// caller backs off on its own.
func RetryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), time.Second)
	}
	return 0
}

// ClassifyTokenEndpoint fills e from err when err is a token endpoint
// failure (exchange or refresh) and reports whether it was. These arrive
// wrapped in *url.Error, which would otherwise pass for a network error,
// so providers check them first. invalid_grant (a revoked or expired
// grant, including Google's 7-day test-mode tokens and Spotify's
// six-month limit) means the fan must reconnect.
func ClassifyTokenEndpoint(e *providers.Error, err error) bool {
	re, ok := RetrieveError(err)
	if !ok {
		return false
	}
	e.Reason = re.ErrorCode
	e.Err = &Quiet{Msg: "token endpoint refused: " + re.ErrorCode, Err: re}
	if re.Response != nil {
		e.Status = re.Response.StatusCode
	}
	switch {
	case re.ErrorCode == "invalid_grant":
		e.Class = providers.GrantInvalid
	case e.Status == http.StatusTooManyRequests:
		e.Class, e.RetryAfter = providers.RateLimited, RetryAfter(re.Response.Header.Get("Retry-After"))
	case e.Status >= 500:
		e.Class = providers.Retryable
	default:
		e.Class = providers.Permanent
	}
	return true
}
