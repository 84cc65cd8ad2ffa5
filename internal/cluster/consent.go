package cluster

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

// PrepareConsent starts a fan's connection and passes the fake's consent
// screen; it returns the callback URL a browser would now open (it holds
// a code and a state: never log it).
func PrepareConsent(ctx context.Context, hc *http.Client, apiURL string, cr ConnectRequest) (string, error) {
	base := strings.TrimRight(apiURL, "/")
	startBody := map[string]any{"release": cr.Release, "zone": cr.Zone, "consent": true}
	if cr.Actions != nil {
		startBody["actions"] = cr.Actions
	}
	var started struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	startURL := base + "/v1/connect/" + url.PathEscape(cr.Provider) + "/start"
	if err := retryTemporary(ctx, func() error {
		return doJSON(ctx, hc, http.MethodPost, startURL, "", startBody, &started)
	}); err != nil {
		return "", fmt.Errorf("connect %s as %s: start: %w", cr.Provider, cr.User, err)
	}
	if started.AuthorizeURL == "" {
		return "", fmt.Errorf("connect %s as %s: start answered no authorize_url", cr.Provider, cr.User)
	}
	var callback string
	if err := retryTemporary(ctx, func() error {
		var err error
		callback, err = consent(ctx, hc, fake.WithUser(started.AuthorizeURL, cr.User))
		return err
	}); err != nil {
		return "", fmt.Errorf("connect %s as %s: consent screen: %w", cr.Provider, cr.User, err)
	}
	return callback, nil
}

// FinishConsent delivers a callback URL from PrepareConsent. It is not
// retried: the code is single-use.
func FinishConsent(ctx context.Context, hc *http.Client, callback string) (ConnectResult, error) {
	var raw json.RawMessage
	if err := doJSON(ctx, hc, http.MethodGet, callback, "", nil, &raw); err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	res, err := parseConnected(raw)
	if err != nil {
		return ConnectResult{}, fmt.Errorf("callback: %w", err)
	}
	return res, nil
}
