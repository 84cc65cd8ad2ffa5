package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers/applemusic"
	"github.com/presave/presave/internal/providers/fake"
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

// FAKE_APPLE_KEY_FILE: the fake creates the MusicKit key there (0600),
// prints the settings naming it, and accepts developer tokens it signs;
// a second start reuses the file.
func TestAppleKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applemusic.p8")
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncBuf{}
		env := map[string]string{"FAKE_ADDR": "127.0.0.1:0", "FAKE_APPLE_KEY_FILE": path}
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, out) }()
		re := regexp.MustCompile(`(?m)^APPLE_MUSIC_API_URL=(http://127\.0\.0\.1:\d+)/$`)
		var base string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && base == ""; time.Sleep(10 * time.Millisecond) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				base = m[1]
			}
		}
		if base == "" || !strings.Contains(out.String(), "APPLE_PRIVATE_KEY_FILE="+path) {
			t.Fatalf("round %d: output %q", round, out.String())
		}
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: key file %v, %v; want mode 0600", round, info, err)
		}
		p8, _ := os.ReadFile(path)
		dev, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: fake.AppleTeamID, KeyID: fake.AppleKeyID, PrivateKey: p8})
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := dev.Token()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/storefronts/us", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("round %d: a developer token of the key file answered %d", round, resp.StatusCode)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
