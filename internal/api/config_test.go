package api_test

import (
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	load := func(dev bool, vars map[string]string) (api.Config, error) {
		env := config.Env(func(k string) string { return vars[k] })
		return api.ConfigFromEnv(env, config.Common{Dev: dev, RedisURL: config.DefaultRedisURL}, quiet)
	}

	c, err := load(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminToken != api.DevAdminToken || c.PublicURL != config.DefaultPublicURL || c.ConsentVersion != api.DefaultConsentVersion ||
		c.FanRateLimit != 10 || c.FanRateBurst != 30 || !reflect.DeepEqual(c.Queue, queue.Config{Window: 10 * time.Minute, PresaveMaxRetry: 25, PresaveTimeout: 2 * time.Minute, RevokeMaxRetry: 40,
		YouTubeDailyUnits: 10000, Rates: map[providers.Name]queue.Rate{providers.Spotify: {PerSecond: 20, Burst: 4}, providers.YouTube: {PerSecond: 20, Burst: 4},
			providers.AppleMusic: {PerSecond: 20, Burst: 4}}}) || c.MonitoringReadOnly {
		t.Errorf("dev defaults = %+v", c)
	}

	c, err = load(false, map[string]string{
		"ADMIN_TOKEN": "a-long-enough-admin-token", "PUBLIC_URL": "https://presave.example.com/",
		"MONITORING_USER": "ops", "MONITORING_PASSWORD": "pw", "MONITORING_READONLY": "true",
		"CONSENT_VERSION": "2027-01-v2", "FAN_RATE_LIMIT": "2.5", "FAN_RATE_BURST": "5", "RELAY_WINDOW": "15m",
		"PRESAVE_MAX_RETRY": "7", "PRESAVE_TIMEOUT": "45s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://presave.example.com" || !c.MonitoringReadOnly || c.FanRateLimit != 2.5 || c.FanRateBurst != 5 ||
		c.Queue.Window != 15*time.Minute || c.Queue.PresaveMaxRetry != 7 || c.Queue.PresaveTimeout != 45*time.Second || c.ConsentVersion != "2027-01-v2" {
		t.Errorf("configured = %+v", c)
	}

	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{}, "ADMIN_TOKEN is not set"},
		{map[string]string{"ADMIN_TOKEN": "a-long-enough-admin-token", "PUBLIC_URL": "presave.example.com"}, "PUBLIC_URL"},
		{map[string]string{"ADMIN_TOKEN": "a-long-enough-admin-token", "MONITORING_USER": "ops"}, "together"},
		{map[string]string{"ADMIN_TOKEN": "a-long-enough-admin-token", "FAN_RATE_LIMIT": "0"}, "positive"},
		{map[string]string{"ADMIN_TOKEN": "a-long-enough-admin-token", "RELAY_WINDOW": "soon"}, "RELAY_WINDOW"},
		{map[string]string{"ADMIN_TOKEN": "a-long-enough-admin-token", "MONITORING_READONLY": "maybe"}, "MONITORING_READONLY"},
	} {
		if _, err := load(false, tc.vars); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one mentioning %q", tc.vars, err, tc.want)
		}
	}
}
