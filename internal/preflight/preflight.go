// Package preflight checks a deployment's configuration against reality
// before fans meet it (`worker preflight`): PostgreSQL reachable and
// migrated, Redis reachable, the token keys able to open every stored
// value, PUBLIC_URL fit for redirect URIs, each provider accepting the
// app's credentials, and what the apps' limits as configured mean for the
// releases scheduled. It changes nothing.
package preflight

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/seal"
	"github.com/presave/presave/internal/store"
)

// Status is a check's verdict.
type Status string

// Verdicts. Only Fail makes the report fail: a warning is a limit the
// deployment can run with, knowingly.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	// Skip: the check does not apply (a provider not configured).
	Skip Status = "skip"
)

// Check is one line of the report.
type Check struct {
	// Name says what was checked ("postgres", "spotify credentials").
	Name   string
	Status Status
	// Detail is what was found; Fix what to do about a warning or a
	// failure.
	Detail string
	Fix    string
}

// Report is every check, in the order they ran.
type Report struct {
	Checks []Check
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Find returns the check named name, or false.
func (r Report) Find(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Write prints one line per check, its fix indented under it, then the
// verdict.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	counts := map[Status]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", c.Status, width, c.Name, c.Detail)
		if c.Fix != "" && c.Status != OK {
			fmt.Fprintf(&b, "      %*s  -> %s\n", width, "", c.Fix)
		}
	}
	verdict := "preflight passed"
	if r.Failed() {
		verdict = "preflight FAILED"
	}
	fmt.Fprintf(&b, "%s: %d ok, %d warnings, %d failed, %d skipped\n", verdict, counts[OK], counts[Warn], counts[Fail], counts[Skip])
	_, err := io.WriteString(w, b.String())
	return err
}

// Timeout bounds each check that leaves the process.
const Timeout = 15 * time.Second

// run is one preflight: the report so far and what the checks share.
type run struct {
	env    config.Env
	report Report
	cfg    config.Common
	st     *store.Store
	provs  registry.Set
	queue  queue.Config
}

func (r *run) add(c Check) { r.report.Checks = append(r.report.Checks, c) }

// Run checks the deployment env describes (the same variables the API
// and the workers read) and reports; it never changes anything.
func Run(ctx context.Context, env config.Env) Report {
	r := &run{env: env}
	cfg, err := config.LoadCommon(env)
	if err != nil {
		r.add(Check{Name: "configuration", Status: Fail, Detail: err.Error(), Fix: "fix the variable named; the README's configuration table lists them all"})
		return r.report
	}
	r.cfg = cfg
	r.checkPostgres(ctx)
	r.checkRedis(ctx)
	r.checkTokenKeys(ctx)
	publicURL := r.checkPublicURL()
	if r.queue, err = queue.LoadConfig(env); err != nil {
		r.add(Check{Name: "queue configuration", Status: Fail, Detail: err.Error(), Fix: "fix the variable named"})
	}
	if r.provs, err = registry.FromEnv(env, publicURL); err != nil {
		r.add(Check{Name: "providers", Status: Fail, Detail: err.Error(), Fix: "fix the variable named"})
	} else {
		r.checkProviders(ctx, publicURL)
	}
	if r.st != nil && r.provs != nil {
		r.checkReleases(ctx)
	}
	if r.st != nil {
		r.st.Close()
	}
	return r.report
}

// checkTokenKeys checks the ring against the stored values: each one's
// key must be in it.
func (r *run) checkTokenKeys(ctx context.Context) {
	ring := r.cfg.Ring
	c := Check{Name: "token keys", Status: OK}
	if strings.Contains(r.env.String("TOKEN_KEYS", ""), config.DevTokenKeys) || r.env.String("TOKEN_KEYS", "") == "" {
		c.Status, c.Detail = Fail, "TOKEN_KEYS is the public development key"
		c.Fix = "make a key (" + seal.HowToMakeKey + ") and set TOKEN_KEYS=id:key; never run real fans on PRESAVE_DEV's key"
		r.add(c)
		return
	}
	if r.st == nil {
		c.Status, c.Detail = Skip, fmt.Sprintf("%s, primary %q; the stored values are not checked (no database)", plural(len(ring.IDs()), "key"), ring.Primary())
		r.add(c)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	used, err := r.st.SealedKeys(cctx)
	if err != nil {
		c.Status, c.Detail = Fail, "reading the stored values' key IDs: "+err.Error()
		r.add(c)
		return
	}
	var missing, wrong []string
	total := 0
	for _, id := range slices.Sorted(maps.Keys(used)) {
		k := used[id]
		total += k.Values
		switch {
		case !slices.Contains(ring.IDs(), id):
			missing = append(missing, fmt.Sprintf("%q (%d values)", id, k.Values))
		case !k.Opens:
			wrong = append(wrong, fmt.Sprintf("%q (%d values)", id, k.Values))
		}
	}
	c.Detail = fmt.Sprintf("%s, primary %q; ", plural(len(ring.IDs()), "key"), ring.Primary())
	if total == 0 {
		c.Detail += "nothing is stored sealed yet"
	} else {
		c.Detail += fmt.Sprintf("all %s stored are under its keys", plural(total, "sealed value"))
	}
	switch {
	case len(missing) > 0:
		c.Status = Fail
		c.Detail = "stored values are sealed under keys TOKEN_KEYS lacks: " + strings.Join(missing, ", ")
		c.Fix = "put those keys back in TOKEN_KEYS after the primary, then run `worker rotate-keys` before removing them again"
	case len(wrong) > 0:
		c.Status = Fail
		c.Detail = "TOKEN_KEYS holds another key under the ID of stored values, which do not open: " + strings.Join(wrong, ", ")
		c.Fix = "restore the original key under that ID (a new key needs a new ID, listed first, then `worker rotate-keys`)"
	}
	r.add(c)
}

// plural is "1 key", "2 keys".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
