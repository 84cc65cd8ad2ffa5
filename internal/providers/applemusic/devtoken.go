// Package applemusic is the Apple Music provider. This file holds the
// developer token: the JWT every Apple Music API request carries, signed
// ES256 with the team's MusicKit private key.
package applemusic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Developer token limits, from Apple's "Generating Developer Tokens"
// (MusicKit): the header names the key (kid) and the algorithm (ES256);
// the claims are the team ID (iss), the issue time (iat) and the expiry
// (exp), which may be at most 15,777,000 seconds (six months) after the
// issue time.
const (
	// MaxTokenLifetime is Apple's limit on exp - iat.
	MaxTokenLifetime = 15777000 * time.Second
	// TokenLifetimeDefault is the lifetime of the tokens we sign: a day
	// keeps a leaked token's use short, and signing costs nothing.
	TokenLifetimeDefault = 24 * time.Hour
	// ClockSkew is how far before now a token says it was issued: a
	// server whose clock lags ours must not see an iat in its future.
	ClockSkew = time.Minute
)

// appleID matches a team or key ID as Apple's developer account shows
// them: ten upper-case letters and digits.
var appleID = regexp.MustCompile(`^[A-Z0-9]{10}$`)

// DevTokenConfig is what signing a developer token needs.
type DevTokenConfig struct {
	// TeamID is the Apple Developer team (APPLE_TEAM_ID); KeyID the
	// MusicKit key (APPLE_KEY_ID).
	TeamID, KeyID string
	// PrivateKey is the key's .p8 file as Apple hands it out: a PEM
	// "PRIVATE KEY" block holding a PKCS #8 P-256 key (APPLE_PRIVATE_KEY).
	PrivateKey []byte
	// Lifetime of each token (zero: TokenLifetimeDefault); at most
	// MaxTokenLifetime.
	Lifetime time.Duration
	// Now is the clock (nil: time.Now); tests stub it.
	Now func() time.Time
}

// DevTokens signs developer tokens and caches the current one, signing
// a new one once a quarter of its lifetime is left, so no request ever
// carries a token about to expire. It is safe for concurrent use.
type DevTokens struct {
	cfg DevTokenConfig
	key *ecdsa.PrivateKey

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewDevTokens validates cfg and parses its key.
func NewDevTokens(cfg DevTokenConfig) (*DevTokens, error) {
	if cfg.Lifetime == 0 {
		cfg.Lifetime = TokenLifetimeDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if !appleID.MatchString(cfg.TeamID) {
		errs = append(errs, fmt.Errorf("APPLE_TEAM_ID %q is not a team ID (ten letters and digits, from the developer account's membership page)", cfg.TeamID))
	}
	if !appleID.MatchString(cfg.KeyID) {
		errs = append(errs, fmt.Errorf("APPLE_KEY_ID %q is not a key ID (ten letters and digits, shown with the MusicKit key)", cfg.KeyID))
	}
	if cfg.Lifetime < time.Minute || cfg.Lifetime > MaxTokenLifetime {
		errs = append(errs, fmt.Errorf("developer token lifetime %s: must be between 1m and %s (Apple's limit)", cfg.Lifetime, MaxTokenLifetime))
	}
	key, err := parseKey(cfg.PrivateKey)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("applemusic: %w", err)
	}
	return &DevTokens{cfg: cfg, key: key}, nil
}

// parseKey reads a MusicKit .p8 key: PKCS #8, ECDSA on P-256 (ES256).
func parseKey(p8 []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(p8)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("APPLE_PRIVATE_KEY is not a PEM \"PRIVATE KEY\" block (the .p8 file Apple gives for a MusicKit key)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("APPLE_PRIVATE_KEY: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("APPLE_PRIVATE_KEY is not a P-256 elliptic-curve key (MusicKit keys sign ES256)")
	}
	return ec, nil
}

// Token returns the current developer token, signing a new one when the
// cached one has less than a quarter of its lifetime left.
func (d *DevTokens) Token() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	if d.token != "" && now.Before(d.renewAt) {
		return d.token, nil
	}
	iat := now.Add(-ClockSkew)
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer:    d.cfg.TeamID,
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(iat.Add(d.cfg.Lifetime)),
	})
	t.Header["kid"] = d.cfg.KeyID
	signed, err := t.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("applemusic: sign developer token: %w", err)
	}
	d.token, d.renewAt = signed, iat.Add(d.cfg.Lifetime*3/4)
	return signed, nil
}
