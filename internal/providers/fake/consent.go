package fake

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Consent plays the fan on the consent screen: it GETs authURL (a
// provider's AuthCodeURL, optionally with "user" or "deny=1" added)
// without following the redirect and returns the callback URL's query
// (code and state, or error). It works against the fake only.
func Consent(ctx context.Context, authURL string) (url.Values, error) {
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("fake consent: HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("fake consent: bad redirect: %w", err)
	}
	return loc.Query(), nil
}

// WithUser returns authURL asking the fake to consent as userID.
func WithUser(authURL, userID string) string {
	u, err := url.Parse(authURL)
	if err != nil {
		return authURL
	}
	q := u.Query()
	q.Set("user", userID)
	u.RawQuery = q.Encode()
	return u.String()
}
