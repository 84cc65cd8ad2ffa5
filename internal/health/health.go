// Package health is the client side of the binaries' /healthz endpoints,
// used by `api healthcheck` and `worker healthcheck` in container images
// that have no curl, and the guard of a worker's /metrics.
package health

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Check GETs http://addr/healthz (an unspecified host means loopback) and
// fails unless it answers 200.
func Check(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", addr, resp.StatusCode)
	}
	return nil
}

// RequireBearer serves h only to requests that carry token as
// "Authorization: Bearer <token>"; an empty token lets everybody through.
// It guards a worker's /metrics (METRICS_TOKEN, as on the API); refusals
// are 401 in the API's error shape (codes metrics_token_missing and
// metrics_token_invalid).
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got = strings.TrimSpace(got)
		if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
			refuse(w, "metrics_token_missing", "Send the metrics token as Authorization: Bearer <token>.")
			return
		}
		// Hashing first keeps the comparison constant-time whatever the
		// lengths.
		g := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(g[:], want[:]) != 1 {
			refuse(w, "metrics_token_invalid", "The metrics token is not valid.")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", "Bearer")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"code": code, "message": message}})
}
