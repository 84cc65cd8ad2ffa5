package youtube_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/youtube"
)

// exchange runs one consent and code exchange against f behind srv and
// returns the account ID and how many userinfo requests f saw.
func exchange(t *testing.T, f *fake.Server, srv *httptest.Server, clientID, user string) (string, int, error) {
	t.Helper()
	u := fake.URLs(srv.URL)
	p := youtube.New(youtube.Config{
		ClientID: clientID, ClientSecret: "secret", RedirectURL: "https://app.test/callback",
		AuthURL: u.GoogleAuthURL, TokenURL: u.GoogleTokenURL, RevokeURL: u.GoogleRevokeURL,
		UserinfoURL: u.GoogleUserinfoURL, APIURL: u.YouTubeAPIURL,
	})
	ctx := ctxT(t)
	verifier := oauth2.GenerateVerifier()
	q, err := fake.Consent(ctx, fake.WithUser(p.AuthCodeURL("st", verifier, p.Scopes([]providers.Action{providers.ActionLike})), user))
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.Exchange(ctx, q.Get("code"), verifier)
	userinfo := 0
	for k, n := range f.State().Calls {
		if strings.Contains(k, "/google/v1/userinfo") {
			userinfo += n
		}
	}
	return g.AccountID, userinfo, err
}

// The account ID comes from the ID token of the exchange: no userinfo
// request.
func TestAccountFromTheIDToken(t *testing.T) {
	t.Parallel()
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	sub, userinfo, err := exchange(t, f, srv, clientID, "4711")
	if err != nil || sub != "4711" || userinfo != 0 {
		t.Errorf("account %q, err %v, userinfo requests %d; want 4711 from the ID token alone", sub, err, userinfo)
	}
}

// An ID token that is missing, malformed, for another client, from
// another issuer or expired is not trusted: userinfo answers instead.
func TestAccountFromUserinfoWhenTheIDTokenIsNotUsable(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(claims map[string]any) string{
		"missing":                  func(map[string]any) string { return "" },
		"malformed":                func(map[string]any) string { return "not-a-jwt" },
		"other audience":           func(c map[string]any) string { c["aud"] = "someone-else"; return "" },
		"other issuer":             func(c map[string]any) string { c["iss"] = "https://evil.example"; return "" },
		"expired":                  func(c map[string]any) string { c["exp"] = 1; return "" },
		"no subject":               func(c map[string]any) string { delete(c, "sub"); return "" },
		"audience list without us": func(c map[string]any) string { c["sub"] = "someone"; c["aud"] = []string{"x"}; return "" },
		// Several audiences: only an "azp" naming us makes it ours.
		"audiences, azp another": func(c map[string]any) string {
			c["sub"], c["aud"], c["azp"] = "someone", []string{clientID, "other-client"}, "other-client"
			return ""
		},
		"audiences, no azp": func(c map[string]any) string {
			c["sub"], c["aud"] = "someone", []string{clientID, "other-client"}
			delete(c, "azp")
			return ""
		},
		"azp another": func(c map[string]any) string { c["sub"], c["azp"] = "someone", "other-client"; return "" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := fake.New(fake.Options{})
			srv := idTokenRewriter(t, f, func(body map[string]any) {
				raw, ok := body["id_token"].(string)
				switch {
				case !ok:
				case name == "missing":
					delete(body, "id_token")
				default:
					parts := strings.Split(raw, ".")
					payload, _ := base64URL.DecodeString(parts[1])
					var claims map[string]any
					_ = json.Unmarshal(payload, &claims)
					if replaced := edit(claims); replaced != "" {
						body["id_token"] = replaced
						return
					}
					b, _ := json.Marshal(claims)
					body["id_token"] = parts[0] + "." + base64URL.EncodeToString(b) + "." + parts[2]
				}
			})
			t.Cleanup(srv.Close)
			sub, userinfo, err := exchange(t, f, srv, clientID, "4711")
			if err != nil || sub != "4711" || userinfo != 1 {
				t.Errorf("account %q, err %v, userinfo requests %d; want 4711 from userinfo", sub, err, userinfo)
			}
		})
	}
}

// An ID token for several audiences is ours when its "azp" names us.
func TestAccountFromAnIDTokenForSeveralAudiencesAuthorizedToUs(t *testing.T) {
	t.Parallel()
	f := fake.New(fake.Options{})
	srv := idTokenRewriter(t, f, func(body map[string]any) {
		parts := strings.Split(body["id_token"].(string), ".")
		payload, _ := base64URL.DecodeString(parts[1])
		var claims map[string]any
		_ = json.Unmarshal(payload, &claims)
		claims["aud"], claims["azp"] = []string{"other-client", clientID}, clientID
		b, _ := json.Marshal(claims)
		body["id_token"] = parts[0] + "." + base64URL.EncodeToString(b) + "." + parts[2]
	})
	t.Cleanup(srv.Close)
	sub, userinfo, err := exchange(t, f, srv, clientID, "4711")
	if err != nil || sub != "4711" || userinfo != 0 {
		t.Errorf("account %q, err %v, userinfo requests %d; want 4711 from the ID token alone", sub, err, userinfo)
	}
}

// idTokenRewriter serves the fake with its token endpoint's JSON answer
// passed through edit first.
func idTokenRewriter(t *testing.T, f *fake.Server, edit func(body map[string]any)) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/google/token" {
			f.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("token answer: %v", err)
		}
		edit(body)
		out, _ := json.Marshal(body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, bytes.NewReader(out))
	}))
}

var base64URL = base64.RawURLEncoding
