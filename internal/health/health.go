// Package health is the client side of the binaries' /healthz endpoints,
// used by `api healthcheck` and `worker healthcheck` in container images
// that have no curl.
package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
