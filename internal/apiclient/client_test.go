package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/providers/fake"
)

// TestConnectPlaysTheBrowser drives Connect against a stand-in API whose
// start points at the real fake's consent screen: the helper must follow
// the fake's redirect to the callback by hand, with the code and state the
// fake issued, and read the callback's JSON.
func TestConnectPlaysTheBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fk := httptest.NewServer(fake.New(fake.Options{}))
	t.Cleanup(fk.Close)

	var api *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/connect/spotify/start", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Release string `json:"release"`
			Zone    string `json:"zone"`
			Consent bool   `json:"consent"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !body.Consent || body.Release != "rel" || body.Zone != "Europe/Paris" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_request","message":"bad start"}}`))
			return
		}
		q := url.Values{"client_id": {"c"}, "response_type": {"code"}, "state": {"st-1"},
			"redirect_uri": {api.URL + "/connect/spotify/callback"}, "scope": {"user-library-modify"}}
		http.SetCookie(w, &http.Cookie{Name: "presave_bind", Value: "nonce-1", HttpOnly: true})
		_ = json.NewEncoder(w).Encode(map[string]string{"authorize_url": fk.URL + "/authorize?" + q.Encode()})
	})
	mux.HandleFunc("GET /connect/spotify/callback", func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie("presave_bind")
		if r.URL.Query().Get("state") != "st-1" || r.URL.Query().Get("code") == "" || err != nil || ck.Value != "nonce-1" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_state","message":"no"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"fan_token":"ft","fan_id":"f1","presave":{"id":"p1","due_at":"2026-01-02T03:04:05Z"}}`))
	})
	api = httptest.NewServer(mux)
	t.Cleanup(api.Close)

	hc := apiclient.NewHTTPClient(4)
	res, err := apiclient.Connect(ctx, hc, api.URL, "spotify", "rel", "Europe/Paris", "fan-1")
	if err != nil {
		t.Fatal(err)
	}
	if res.FanToken != "ft" || res.FanID != "f1" || res.PresaveID != "p1" || res.DueAt.IsZero() {
		t.Fatalf("result = %+v", res)
	}

	// An API error carries its status and code.
	_, err = apiclient.Connect(ctx, hc, api.URL, "spotify", "other", "Europe/Paris", "fan-2")
	var he *apiclient.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Code != "invalid_request" {
		t.Fatalf("err = %v, want a 400 invalid_request HTTPError", err)
	}
}
