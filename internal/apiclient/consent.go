package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/presave/presave/internal/providers/fake"
)

// Connect's two halves, for the benchmark, which times the callbacks
// alone: PrepareConsent runs start and the consent screen, FinishConsent
// delivers the callback.

// Callback is a callback a browser would now open: its URL (it holds a
// code and a state: never log it) and the binding cookie the start set,
// without which the API refuses it (the state is bound to the client
// that started the flow).
type Callback struct {
	URL     string
	Binding *http.Cookie
	// Form, when set, is posted to URL (the Apple Music page's post of
	// the Music User Token); otherwise URL is opened.
	Form url.Values
}

// bindingCookie is the API's binding cookie (api.BindingCookie; this
// package talks to the API over HTTP only).
const bindingCookie = "presave_bind"

// PrepareConsent starts a fan's connection and passes the fake's consent
// screen; it returns the callback a browser would now open.
func PrepareConsent(ctx context.Context, hc *http.Client, apiURL string, cr ConnectRequest) (Callback, error) {
	base := strings.TrimRight(apiURL, "/")
	startBody := map[string]any{"release": cr.Release, "zone": cr.Zone, "consent": true}
	if cr.Actions != nil {
		startBody["actions"] = cr.Actions
	}
	var started struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	startURL := base + "/v1/connect/" + url.PathEscape(cr.Provider) + "/start"
	var cb Callback
	if err := retryTemporary(ctx, func() error {
		cookies, err := doJSONCookies(ctx, hc, http.MethodPost, startURL, "", nil, startBody, &started)
		for _, c := range cookies {
			if c.Name == bindingCookie {
				cb.Binding = c
			}
		}
		return err
	}); err != nil {
		return Callback{}, fmt.Errorf("connect %s as %s: start: %w", cr.Provider, cr.User, err)
	}
	if started.AuthorizeURL == "" || cb.Binding == nil {
		return Callback{}, fmt.Errorf("connect %s as %s: start answered no authorize_url or no binding cookie", cr.Provider, cr.User)
	}
	if err := retryTemporary(ctx, func() error {
		if u, err := url.Parse(started.AuthorizeURL); err == nil && strings.HasSuffix(u.Path, musicKitPagePath) {
			cb.URL, cb.Form, err = musicKitConsent(ctx, hc, base, u, cr)
			return err
		}
		var err error
		cb.URL, err = consent(ctx, hc, fake.WithUser(started.AuthorizeURL, cr.User))
		return err
	}); err != nil {
		return Callback{}, fmt.Errorf("connect %s as %s: consent screen: %w", cr.Provider, cr.User, err)
	}
	return cb, nil
}

// FinishConsent delivers a callback from PrepareConsent. It is not
// retried: the code is single-use.
func FinishConsent(ctx context.Context, hc *http.Client, cb Callback) (ConnectResult, error) {
	var raw json.RawMessage
	var cookies []*http.Cookie
	if cb.Binding != nil {
		cookies = []*http.Cookie{{Name: cb.Binding.Name, Value: cb.Binding.Value}}
	}
	method, body := http.MethodGet, any(nil)
	if cb.Form != nil {
		method, body = http.MethodPost, cb.Form
	}
	if _, err := doJSONCookies(ctx, hc, method, cb.URL, "", cookies, body, &raw); err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	res, err := parseConnected(raw)
	if err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	return res, nil
}

// The Apple Music connect page and its post (api's routes; this package
// talks to the API over HTTP only).
const (
	musicKitPagePath     = "/connect/applemusic/authorize"
	musicKitCallbackPath = "/connect/applemusic/callback"
)

var (
	developerTokenAttr = regexp.MustCompile(`data-developer-token="([^"]+)"`)
	musicKitScript     = regexp.MustCompile(`<script src="([^"]+)" async>`)
)

// musicKitConsent does what a browser does on the Apple Music page at
// page: it loads the page, and what MusicKit JS's authorize() yields
// (from the stand-in the page loads, at the fake, as cr.User) becomes
// the form the page posts.
func musicKitConsent(ctx context.Context, hc *http.Client, base string, page *url.URL, cr ConnectRequest) (string, url.Values, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page.String(), nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("GET %s: %w", Redact(page.String()), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, httpError(req, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	dev, script := developerTokenAttr.FindSubmatch(b), musicKitScript.FindSubmatch(b)
	if dev == nil || script == nil {
		return "", nil, errors.New("the Apple Music page has no developer token or no MusicKit script")
	}
	mk, err := url.Parse(html.UnescapeString(string(script[1])))
	if err != nil {
		return "", nil, err
	}
	sf := cr.Storefront
	if sf == "" {
		sf = "us"
	}
	var out struct {
		Token string `json:"music_user_token"`
	}
	form := url.Values{"developer_token": {html.UnescapeString(string(dev[1]))}, "user": {cr.User}, "storefront": {sf}}
	if _, err := doJSONCookies(ctx, hc, http.MethodPost, mk.Scheme+"://"+mk.Host+"/musickit/authorize", "", nil, form, &out); err != nil {
		return "", nil, err
	}
	return base + musicKitCallbackPath, url.Values{"state": {page.Query().Get("state")}, "music_user_token": {out.Token}}, nil
}
