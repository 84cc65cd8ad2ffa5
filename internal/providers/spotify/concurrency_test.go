package spotify_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/presave/presave/internal/providers"
)

// TestConcurrentConsents: the API builds consent URLs for some fans while
// it exchanges codes for others, on one Provider. Under -race this once
// caught AuthCodeURL copying a config that Exchange updates.
func TestConcurrentConsents(t *testing.T) {
	e := newEnv(t, "", providers.ActionSave)
	scopes := e.p.Scopes([]providers.Action{providers.ActionSave})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			u := e.p.AuthCodeURL(fmt.Sprintf("state-%d", i), "verifier-verifier-verifier-verifier-verifier", scopes)
			if !strings.Contains(u, "scope=user-library") {
				t.Errorf("consent URL lacks the scopes: %s", u)
			}
		}()
		go func() {
			defer wg.Done()
			fan := &env{fake: e.fake, p: e.p, user: fmt.Sprintf("fan-%d", i)}
			fan.connect(t, scopes)
		}()
	}
	wg.Wait()
}
