package spotify

import (
	"context"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

var _ providers.Resolver = (*Provider)(nil)

// Resolve implements providers.Resolver with Spotify's "Search for Item"
// (GET /v1/search, q=upc:CODE&type=album or q=isrc:CODE&type=track,
// limit 1) on an app token: the client-credentials grant, which "does not
// include authorization and therefore cannot be used to access or manage
// a user's private data" (Spotify's authorization guide), and needs no
// fan. A code the catalogue does not know yet answers no item: "".
func (p *Provider) Resolve(ctx context.Context, kind providers.CodeKind, code string) (string, error) {
	typ := "album"
	if kind == providers.CodeISRC {
		typ = "track"
	}
	q := url.Values{"q": {string(kind) + ":" + code}, "type": {typ}, "limit": {"1"}}
	type page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	var out struct {
		Albums *page `json:"albums"`
		Tracks *page `json:"tracks"`
	}
	c := &client{p: p, hc: p.appClient()}
	if err := c.do(ctx, http.MethodGet, "search?"+q.Encode(), nil, &out, http.StatusOK); err != nil {
		return "", classify("resolve", err, oauthx.Failure{})
	}
	pg := out.Albums
	if kind == providers.CodeISRC {
		pg = out.Tracks
	}
	if pg == nil || len(pg.Items) == 0 {
		return "", nil
	}
	return pg.Items[0].ID, nil
}

// CheckApp implements providers.Provider with the client credentials
// grant: a fresh app token, which Spotify issues only to a client ID and
// secret it knows ("invalid_client" otherwise).
func (p *Provider) CheckApp(ctx context.Context) error {
	if _, err := p.appCredentials().Token(oauthx.WithBase(ctx, p.base)); err != nil {
		return classify("app", err, oauthx.Failure{})
	}
	return nil
}

// appCredentials is the client credentials grant, sent in the
// Authorization header as Spotify's guide shows.
func (p *Provider) appCredentials() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
		TokenURL: p.cfg.AccountsURL + "/api/token", AuthStyle: oauth2.AuthStyleInHeader}
}

// appClient is the HTTP client on the app's own token, fetched once and
// renewed by x/oauth2 when it expires.
func (p *Provider) appClient() *http.Client {
	p.appOnce.Do(func() {
		src := p.appCredentials().TokenSource(oauthx.WithBase(context.Background(), p.base))
		p.app = &http.Client{Transport: &oauth2.Transport{Source: src, Base: p.base.Transport}, Timeout: p.base.Timeout}
	})
	return p.app
}
