package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestRunServesAndPrintsURLs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuf{}
	env := map[string]string{"FAKE_ADDR": "127.0.0.1:0", "FAKE_ROTATE": "true", "FAKE_TOKEN_TTL": "5m"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, out) }()

	re := regexp.MustCompile(`(?m)^SPOTIFY_API_URL=(http://127\.0\.0\.1:\d+)/v1/$`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("no URLs printed: %q", out.String())
	}
	for _, k := range []string{"SPOTIFY_ACCOUNTS_URL=", "GOOGLE_AUTH_URL=", "GOOGLE_TOKEN_URL=", "GOOGLE_REVOKE_URL=", "GOOGLE_USERINFO_URL=", "YOUTUBE_API_URL="} {
		if !strings.Contains(out.String(), k+base) {
			t.Errorf("output lacks %s%s", k, base)
		}
	}
	resp, err := http.Get(base + "/_fake/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("state: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestRunRejectsBadEnv(t *testing.T) {
	env := map[string]string{"FAKE_ADDR": "127.0.0.1:0", "FAKE_TOKEN_TTL": "soon"}
	if err := run(context.Background(), nil, func(k string) string { return env[k] }, &syncBuf{}); err == nil {
		t.Fatal("bad FAKE_TOKEN_TTL accepted")
	}
}
