package applemusic_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presave/presave/internal/providers/applemusic"
)

func p8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// The token is what Apple's documentation asks for: ES256, kid = key ID,
// iss = team ID, iat now (less ClockSkew), exp within six months; verified with the
// key's public half.
func TestDeveloperTokenClaims(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	d, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: "TEAM123456", KeyID: "KEY1234567",
		PrivateKey: p8(t, key), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(signed, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if tok.Header["kid"] != "KEY1234567" || claims.Issuer != "TEAM123456" {
		t.Errorf("kid %v, iss %q; want the key and team IDs", tok.Header["kid"], claims.Issuer)
	}
	if !claims.IssuedAt.Equal(now.Add(-applemusic.ClockSkew)) || claims.ExpiresAt.Sub(claims.IssuedAt.Time) != applemusic.TokenLifetimeDefault {
		t.Errorf("iat %v, exp %v; want now less %s and %s after that", claims.IssuedAt, claims.ExpiresAt, applemusic.ClockSkew, applemusic.TokenLifetimeDefault)
	}
}

// One token is reused until a quarter of its lifetime is left, then a
// new one is signed.
func TestDeveloperTokenRenewal(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	d, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: "TEAM123456", KeyID: "KEY1234567",
		PrivateKey: p8(t, key), Lifetime: 4 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := d.Token()
	now = now.Add(3*time.Hour - applemusic.ClockSkew - time.Second)
	if again, _ := d.Token(); again != first {
		t.Error("a token with more than a quarter of its life left was signed again")
	}
	now = now.Add(time.Second)
	if renewed, _ := d.Token(); renewed == first {
		t.Error("a token with a quarter of its life left was not renewed")
	}
}

func TestDeveloperTokenConfigErrors(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := applemusic.DevTokenConfig{TeamID: "TEAM123456", KeyID: "KEY1234567", PrivateKey: p8(t, ec)}
	for name, tc := range map[string]struct {
		change func(*applemusic.DevTokenConfig)
		want   string
	}{
		"team":     {func(c *applemusic.DevTokenConfig) { c.TeamID = "team" }, "APPLE_TEAM_ID"},
		"key id":   {func(c *applemusic.DevTokenConfig) { c.KeyID = "" }, "APPLE_KEY_ID"},
		"not pem":  {func(c *applemusic.DevTokenConfig) { c.PrivateKey = []byte("secret") }, "PEM"},
		"rsa":      {func(c *applemusic.DevTokenConfig) { c.PrivateKey = p8(t, rsaKey) }, "P-256"},
		"p-384":    {func(c *applemusic.DevTokenConfig) { c.PrivateKey = p8(t, ec384) }, "P-256"},
		"lifetime": {func(c *applemusic.DevTokenConfig) { c.Lifetime = applemusic.MaxTokenLifetime + time.Second }, "Apple's limit"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.change(&c)
			_, err := applemusic.NewDevTokens(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want one naming %q", err, tc.want)
			}
		})
	}
	if _, err := applemusic.NewDevTokens(good); err != nil {
		t.Errorf("a valid configuration was refused: %v", err)
	}
}
