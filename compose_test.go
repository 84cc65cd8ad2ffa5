package presave_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestComposeConfig validates compose.yaml with docker-compose (installed
// by scripts/services.sh from Debian's packages); no Docker engine needed.
func TestComposeConfig(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed (scripts/services.sh installs it when run as root)")
	}
	cmd := exec.Command(bin, "-f", "compose.yaml", "config")
	cmd.Env = append(cmd.Environ(), "TOKEN_KEYS=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "ADMIN_TOKEN=x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	for _, svc := range []string{"postgres:", "redis:", "api:", "worker:", "asynqmon:"} {
		if !strings.Contains(string(out), svc) {
			t.Errorf("compose config lacks service %s", svc)
		}
	}
	// Without the token key, compose must refuse rather than start unsafely.
	cmd = exec.Command(bin, "-f", "compose.yaml", "config")
	cmd.Env = append(cmd.Environ(), "TOKEN_KEYS=", "ADMIN_TOKEN=x")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("compose config passed without TOKEN_KEYS:\n%s", out)
	}
}
