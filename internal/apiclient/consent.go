package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	if _, err := doJSONCookies(ctx, hc, http.MethodGet, cb.URL, "", cookies, nil, &raw); err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	res, err := parseConnected(raw)
	if err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	return res, nil
}
