package guard_test

import (
	"testing"

	"github.com/presave/presave/internal/guard"
	"github.com/presave/presave/internal/providers"
)

func TestCanary(t *testing.T) {
	save, follow := providers.ActionSave, providers.ActionFollow
	both := []providers.Action{save, follow}
	ok := guard.Result{OK: true}
	target := guard.Result{Failed: true, Target: true, Reason: "not_found"}
	grant := guard.Result{Failed: true, Reason: "reconnect_required"}
	member := func(finished bool, rs map[providers.Action]guard.Result) guard.Member {
		return guard.Member{Actions: both, Results: rs, Finished: finished}
	}
	notLive := guard.Member{Actions: both, Results: map[providers.Action]guard.Result{follow: ok},
		TargetAction: save, TargetReason: "non_existing_id"}
	tests := []struct {
		name    string
		members []guard.Member
		want    guard.Kind
		action  providers.Action
	}{
		{"no canary", nil, guard.Proceed, ""},
		{"every action succeeded somewhere", []guard.Member{
			member(true, map[providers.Action]guard.Result{save: ok, follow: target}),
			member(true, map[providers.Action]guard.Result{save: target, follow: ok})}, guard.Proceed, ""},
		{"save failed on all, follow fine", []guard.Member{
			member(true, map[providers.Action]guard.Result{save: target, follow: ok}),
			member(true, map[providers.Action]guard.Result{save: target, follow: ok})}, guard.Pause, save},
		{"not live on all (still probing)", []guard.Member{notLive, notLive}, guard.Pause, save},
		{"one still running", []guard.Member{
			member(true, map[providers.Action]guard.Result{save: target, follow: ok}),
			member(false, map[providers.Action]guard.Result{})}, guard.Wait, ""},
		{"dead grants are no evidence", []guard.Member{
			member(true, map[providers.Action]guard.Result{save: grant, follow: grant})}, guard.Proceed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := guard.Canary(tt.members)
			if v.Kind != tt.want || v.Action != tt.action {
				t.Errorf("Canary = %+v, want kind %d on %q", v, tt.want, tt.action)
			}
			if v.Kind == guard.Pause && (v.Failed != len(tt.members) || v.Seen != len(tt.members) || v.Error == "") {
				t.Errorf("pause evidence %+v, want %d of %d with an error", v, len(tt.members), len(tt.members))
			}
		})
	}
}

func TestTripped(t *testing.T) {
	c := guard.Config{}.WithDefaults() // 20 % of 200, at least 20 seen
	tests := []struct {
		failed, seen int
		want         bool
	}{
		{1, 1, false},   // one bad account among the first fans
		{19, 19, false}, // too few seen to judge
		{5, 20, true},
		{4, 20, false}, // 20 %, not above
		{41, 200, true},
		{40, 200, false},
	}
	for _, tt := range tests {
		if got := c.Tripped(tt.failed, tt.seen); got != tt.want {
			t.Errorf("Tripped(%d, %d) = %v, want %v", tt.failed, tt.seen, got, tt.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if c, err := guard.LoadConfig(env(nil)); err != nil || c.CanarySize != 10 || c.BreakerWindow != 200 {
		t.Errorf("defaults: %+v %v", c, err)
	}
	for _, bad := range []map[string]string{{"BREAKER_RATE": "2"}, {"BREAKER_WINDOW": "3"}, {"HOLD_MAX": "5m"}, {"CANARY_SIZE": "-1"}} {
		if _, err := guard.LoadConfig(env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
