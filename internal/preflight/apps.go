package preflight

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/providers/spotify"
	"github.com/presave/presave/internal/providers/youtube"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

// checkPublicURL checks PUBLIC_URL against the strictest of the
// providers' redirect URI rules: HTTPS, or HTTP on a loopback IP literal
// for a developer's machine (Spotify refuses "localhost"; Google allows
// it, and both allow the loopback IPs). It returns the URL to derive the
// redirect URIs from.
func (r *run) checkPublicURL() string {
	raw := r.env.PublicURL()
	c := Check{Name: "public url", Status: OK, Detail: raw + " (HTTPS)"}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		c.Status, c.Detail = Fail, fmt.Sprintf("PUBLIC_URL=%q is not an absolute URL without query or fragment", raw)
		c.Fix = "set PUBLIC_URL to the API's external base URL, e.g. https://presave.example.com"
	case u.Scheme == "https":
	case u.Scheme == "http" && loopbackIP(u.Hostname()):
		c.Status, c.Detail = Warn, raw+" is HTTP on a loopback address: the providers accept it, but only this machine reaches it"
		c.Fix = "for real fans, serve the API over HTTPS and set PUBLIC_URL=https://your.domain"
	case u.Scheme == "http" && u.Hostname() == "localhost":
		c.Status, c.Detail = Fail, raw+": Spotify refuses redirect URIs on localhost"
		c.Fix = "use http://127.0.0.1:PORT on a developer's machine, HTTPS anywhere else"
	default:
		c.Status, c.Detail = Fail, raw+" is not HTTPS: Spotify and Google refuse HTTP redirect URIs except on loopback addresses"
		c.Fix = "serve the API over HTTPS (behind your TLS proxy) and set PUBLIC_URL=https://your.domain"
	}
	r.add(c)
	return raw
}

func loopbackIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// credentialVars names each provider's credential variables, for the fixes.
var credentialVars = map[providers.Name]string{
	providers.Spotify:    "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET (the app's settings in Spotify's developer dashboard)",
	providers.YouTube:    "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (Google Cloud console, APIs & Services, Credentials, the OAuth client of type Web application)",
	providers.AppleMusic: "APPLE_TEAM_ID, APPLE_KEY_ID and APPLE_PRIVATE_KEY (a MusicKit key of your Apple Developer account)",
}

// checkProviders checks, for every provider, that it takes the app's
// credentials, the redirect URI to register, and the app's status.
func (r *run) checkProviders(ctx context.Context, publicURL string) {
	for _, n := range providers.Names {
		p, ok := r.provs.Get(n)
		if !ok {
			r.add(Check{Name: string(n) + " credentials", Status: Skip, Detail: n.Label() + " is not configured (APPLE_TEAM_ID is unset), so fans are not offered it"})
			continue
		}
		r.checkCredentials(ctx, p)
		if n.HasAccountID() {
			r.add(Check{Name: string(n) + " redirect uri", Status: OK,
				Detail: "register exactly " + publicURL + registry.CallbackPath(n) + " with the app"})
		}
		r.checkApp(p)
		if units := r.queue.YouTubeDailyUnits; n == providers.YouTube && units > 0 {
			r.add(Check{Name: "youtube quota", Status: OK, Detail: fmt.Sprintf(
				"YOUTUBE_DAILY_UNITS=%d: about %d likes, subscriptions or playlist inserts a Pacific day (%d units each)", units, units/youtube.CostWrite, youtube.CostWrite)})
		}
	}
}

// checkCredentials asks the provider whether it takes the app's credentials.
func (r *run) checkCredentials(ctx context.Context, p providers.Provider) {
	n := p.Name()
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	c := Check{Name: string(n) + " credentials", Status: OK, Detail: n.Label() + " accepts the app's credentials"}
	err := p.CheckApp(cctx)
	pe, _ := providers.AsError(err)
	switch {
	case err == nil:
		if r.env.String(credentialEnv(n), "") == "" {
			c.Status = Warn
			c.Detail += ", but they are presave's development defaults, which only the fake provider knows"
			c.Fix = "set " + credentialVars[n]
		}
	case pe != nil && (pe.Reason == "invalid_client" || pe.Reason == "developer_token_rejected"):
		c.Status, c.Detail = Fail, fmt.Sprintf("%s refused the app's credentials (%s)", n.Label(), pe.Reason)
		c.Fix = "check " + credentialVars[n]
	case providers.ClassOf(err) == providers.Retryable:
		c.Status, c.Detail = Fail, fmt.Sprintf("could not reach %s: %v", n.Label(), err)
		c.Fix = "check this host's outbound HTTPS access (proxy, firewall) and the provider's status page"
	default:
		c.Status, c.Detail = Fail, fmt.Sprintf("%s answered what the credentials check did not expect: %v", n.Label(), err)
		c.Fix = "check " + credentialVars[n] + ", and that no *_URL variable points elsewhere"
	}
	r.add(c)
}

// credentialEnv is the variable whose absence means the development
// credentials are in use.
func credentialEnv(n providers.Name) string {
	switch n {
	case providers.Spotify:
		return "SPOTIFY_CLIENT_ID"
	case providers.YouTube:
		return "GOOGLE_CLIENT_ID"
	}
	return "APPLE_TEAM_ID"
}

// checkApp reports the app's status and what it caps.
func (r *run) checkApp(p providers.Provider) {
	n, app := p.Name(), p.App()
	c := Check{Name: string(n) + " app", Status: OK}
	switch {
	case n == providers.Spotify && app.Status == spotify.AppDevelopment:
		c.Status = Warn
		c.Detail = fmt.Sprintf("development mode: at most %d accounts, each added to the app's allowlist by hand, and the app's owner needs Spotify Premium", app.MaxUsers)
		c.Fix = "apply for extended quota mode (README, Going to production), then set SPOTIFY_APP_MODE=extended"
	case n == providers.Spotify:
		c.Detail = "extended quota mode: no user cap"
	case n == providers.YouTube && app.Status == youtube.AppTesting:
		c.Status = Warn
		c.Detail = fmt.Sprintf("Testing: at most %d test users, and every grant stops working 7 days after the fan's consent", app.MaxUsers)
		c.Fix = "publish the app (Google Auth Platform, Audience, Publish app) with the youtube scope verified, then set GOOGLE_APP_TESTING=false"
	case n == providers.YouTube:
		c.Detail = "In production: no user cap, grants last until revoked"
	default:
		c.Detail = "no app status, no user cap"
	}
	if !app.Declared {
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s is not set, so presave assumes %q: %s", statusEnv(n), app.Status, c.Detail)
		c.Fix = strings.TrimSuffix("set "+statusEnv(n)+" to what the provider's console shows for the app; "+c.Fix, "; ")
	}
	r.add(c)
}

func statusEnv(n providers.Name) string {
	if n == providers.Spotify {
		return "SPOTIFY_APP_MODE"
	}
	return "GOOGLE_APP_TESTING"
}

// checkReleases checks the capped apps' accounts and every scheduled
// release's plan against the apps' limits.
func (r *run) checkReleases(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := rdb.Parse(r.cfg.RedisURL)
	if err != nil {
		return // reported by checkRedis
	}
	client := conn.Client() // the plan reads the queue's configuration only
	defer client.Close()
	q, err := queue.New(r.queue, r.st, client)
	if err != nil {
		return // reported as the queue configuration
	}
	svc := presave.New(presave.Options{Store: r.st, Queue: q, Providers: r.provs})
	for _, n := range providers.Names {
		if p, ok := r.provs.Get(n); ok && p.App().MaxUsers > 0 {
			r.checkAccounts(cctx, p)
		}
	}
	scheduled, err := r.scheduledReleases(cctx)
	if err != nil {
		r.add(Check{Name: "releases", Status: Fail, Detail: "listing the releases: " + err.Error()})
		return
	}
	if len(scheduled) == 0 {
		r.add(Check{Name: "releases", Status: OK, Detail: "no release is scheduled"})
	}
	for _, rel := range scheduled {
		plan, err := svc.Plan(cctx, rel.ID)
		if err != nil {
			r.add(Check{Name: "release " + rel.Slug, Status: Fail, Detail: "planning it: " + err.Error()})
			continue
		}
		r.add(releaseCheck(rel, plan))
	}
}

// checkAccounts compares the accounts holding grants of p with its app's cap.
func (r *run) checkAccounts(ctx context.Context, p providers.Provider) {
	n, app := p.Name(), p.App()
	c := Check{Name: string(n) + " accounts", Status: OK}
	used, err := r.st.AppAccounts(ctx, n, uuid.Nil, "", app.MaxUsers+1)
	switch {
	case err != nil:
		c.Status, c.Detail = Fail, "counting them: "+err.Error()
	case used > app.MaxUsers:
		c.Status = Fail
		c.Detail = fmt.Sprintf("more than %d accounts hold %s grants, and the app serves %d in %s status: %s refuses the others, and their pre-saves will fail",
			app.MaxUsers, n.Label(), app.MaxUsers, app.Status, n.Label())
		c.Fix = "get the app out of its " + app.Status + " status and set " + statusEnv(n) + " accordingly (README, Going to production)"
	case used == app.MaxUsers:
		c.Status = Warn
		c.Detail = fmt.Sprintf("all %d accounts the app serves in %s status are taken: further fans are refused when they connect", app.MaxUsers, app.Status)
		c.Fix = "get the app out of its " + app.Status + " status (README, Going to production)"
	default:
		c.Detail = fmt.Sprintf("%d of the %d accounts the app serves in %s status are taken", used, app.MaxUsers, app.Status)
	}
	r.add(c)
}

// scheduledReleases lists every scheduled release, newest first.
func (r *run) scheduledReleases(ctx context.Context) ([]store.Release, error) {
	var out []store.Release
	after := uuid.Nil
	for {
		page, err := r.st.ListReleases(ctx, after, 200)
		if err != nil || len(page) == 0 {
			return out, err
		}
		for _, rel := range page {
			if rel.Status == store.ReleaseScheduled {
				out = append(out, rel)
			}
		}
		after = page[len(page)-1].ID
	}
}

// releaseCheck is one release's line: failed when some of its open
// pre-saves cannot be delivered, warned with its plan's warnings (the
// app caps are reported once, as accounts).
func releaseCheck(rel store.Release, plan presave.Plan) Check {
	c := Check{Name: "release " + rel.Slug, Status: OK}
	var counts, lost, warned []string
	for _, n := range providers.Names {
		pp := plan.Providers[n]
		if pp.Presaves > 0 {
			counts = append(counts, fmt.Sprintf("%s %d", n, pp.Presaves))
		}
		if pp.Undeliverable > 0 {
			lost = append(lost, fmt.Sprintf("%d %s", pp.Undeliverable, n.Label()))
		}
	}
	for _, w := range plan.Warnings {
		if w.Code != "app_user_cap" && w.Code != "app_full" && !slices.Contains(warned, w.Message) {
			warned = append(warned, w.Message)
		}
	}
	c.Detail = "open pre-saves: none"
	if len(counts) > 0 {
		c.Detail = "open pre-saves: " + strings.Join(counts, ", ")
	}
	switch {
	case len(lost) > 0:
		c.Status = Fail
		c.Detail += "; " + strings.Join(lost, " and ") + " of them cannot be delivered: their grants expire before the release"
		c.Fix = strings.Join(append([]string{"those fans must connect again closer to the release (GET /v1/releases/{id}/plan counts them)."}, warned...), " ")
	case len(warned) > 0:
		c.Status = Warn
		c.Fix = strings.Join(warned, " ")
	}
	return c
}
