package health_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/presave/presave/internal/health"
)

func TestRequireBearer(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "presave_up 1\n") })
	for _, tc := range []struct {
		name, token, header string
		status              int
		code                string
	}{
		{"no token configured", "", "", http.StatusOK, ""},
		{"anonymous", "s3cret-scrape-token", "", http.StatusUnauthorized, "metrics_token_missing"},
		{"basic auth", "s3cret-scrape-token", "Basic b3BzOm9wcw==", http.StatusUnauthorized, "metrics_token_missing"},
		{"empty bearer", "s3cret-scrape-token", "Bearer ", http.StatusUnauthorized, "metrics_token_missing"},
		{"wrong token", "s3cret-scrape-token", "Bearer s3cret-scrape-tokeN", http.StatusUnauthorized, "metrics_token_invalid"},
		{"prefix of the token", "s3cret-scrape-token", "Bearer s3cret", http.StatusUnauthorized, "metrics_token_invalid"},
		{"right token", "s3cret-scrape-token", "Bearer s3cret-scrape-token", http.StatusOK, ""},
		{"scheme in lower case", "s3cret-scrape-token", "bearer s3cret-scrape-token", http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			health.RequireBearer(tc.token, metrics).ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("HTTP %d, want %d", rec.Code, tc.status)
			}
			if tc.code == "" {
				if rec.Body.String() != "presave_up 1\n" {
					t.Errorf("body %q, want the metrics", rec.Body)
				}
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("refusal is not the error shape: %v: %s", err, rec.Body)
			}
			if body.Error.Code != tc.code || body.Error.Message == "" {
				t.Errorf("error %+v, want code %s with a message", body.Error, tc.code)
			}
			if rec.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}
