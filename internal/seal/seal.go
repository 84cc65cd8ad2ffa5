// Package seal encrypts secrets (OAuth tokens, PKCE verifiers) at rest with
// AES-256-GCM under a key ring.
//
// Each sealed value carries the ID of the key that sealed it, so keys can
// rotate: the first key of the ring seals, every key of the ring opens.
// Callers pass the owner of the secret (for a token: fan ID and provider)
// as additional authenticated data, so a ciphertext copied onto another
// row fails to open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// version is the first byte of every sealed value; it lets the format
// change without guessing.
const version byte = 1

// Errors returned by the ring.
var (
	// ErrOpen means a sealed value did not authenticate: it was tampered
	// with, moved to another owner, or sealed under a different key.
	ErrOpen = errors.New("seal: ciphertext does not authenticate")
	// ErrUnknownKey means the value was sealed under a key the ring lacks.
	ErrUnknownKey = errors.New("seal: unknown key ID")
	// ErrNoKeys means the ring configuration holds no key.
	ErrNoKeys = errors.New("seal: no token key configured")
)

// HowToMakeKey tells an operator how to produce a key; error messages
// about keys end with it.
const HowToMakeKey = `generate one with: echo "k1:$(head -c 32 /dev/urandom | base64)"`

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Ring is a set of keys. It is safe for concurrent use.
type Ring struct {
	primary string
	aeads   map[string]cipher.AEAD
	ids     []string
}

// ParseRing parses a TOKEN_KEYS value: a comma-separated list of
// id:base64key, the first being the primary (sealing) key. Each key must
// decode (standard or URL base64) to exactly 32 bytes.
func ParseRing(spec string) (*Ring, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("%w; %s", ErrNoKeys, HowToMakeKey)
	}
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	for i, part := range strings.Split(spec, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("seal: key %d is not of the form id:base64key; %s", i+1, HowToMakeKey)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("seal: key ID %q must be 1-32 characters of [A-Za-z0-9_.-]", id)
		}
		if _, dup := r.aeads[id]; dup {
			return nil, fmt.Errorf("seal: key ID %q appears twice", id)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("seal: key %q: %w; %s", id, err, HowToMakeKey)
		}
		aead, err := NewAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("seal: key %q: %w", id, err)
		}
		r.aeads[id] = aead
		r.ids = append(r.ids, id)
		if i == 0 {
			r.primary = id
		}
	}
	return r, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("key is %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("key is not valid base64")
}

// NewAEAD returns AES-256-GCM for a 32-byte key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Primary is the ID of the key that seals.
func (r *Ring) Primary() string { return r.primary }

// IDs lists the ring's key IDs, primary first.
func (r *Ring) IDs() []string { return append([]string(nil), r.ids...) }

// Seal encrypts plaintext under the primary key, binding aad. It returns
// the key ID and the sealed value: version, key ID, a random 96-bit nonce,
// then ciphertext and tag.
func (r *Ring) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	aead := r.aeads[r.primary]
	head := make([]byte, 0, 2+len(r.primary)+aead.NonceSize())
	head = append(head, version, byte(len(r.primary)))
	head = append(head, r.primary...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: nonce: %w", err)
	}
	head = append(head, nonce...)
	// The header (version and key ID) is authenticated too.
	out := aead.Seal(head, nonce, plaintext, additional(head[:2+len(r.primary)], aad))
	return r.primary, out, nil
}

// Open decrypts a sealed value bound to aad.
func (r *Ring) Open(sealed, aad []byte) ([]byte, error) {
	id, err := KeyID(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	hl := 2 + len(id)
	ns := aead.NonceSize()
	if len(sealed) < hl+ns+aead.Overhead() {
		return nil, ErrOpen
	}
	nonce := sealed[hl : hl+ns]
	pt, err := aead.Open(nil, nonce, sealed[hl+ns:], additional(sealed[:hl], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// KeyID reads the ID of the key a value was sealed under.
func KeyID(sealed []byte) (string, error) {
	if len(sealed) < 2 || sealed[0] != version || len(sealed) < 2+int(sealed[1]) || sealed[1] == 0 {
		return "", ErrOpen
	}
	return string(sealed[2 : 2+int(sealed[1])]), nil
}

func additional(head, aad []byte) []byte {
	out := make([]byte, 0, len(head)+len(aad))
	return append(append(out, head...), aad...)
}

// Owner builds the additional data that binds a secret to its owner, e.g.
// Owner("token", fanID, "spotify").
func Owner(parts ...string) []byte {
	// A separator that cannot appear in IDs keeps ("a","bc") != ("ab","c").
	return []byte(strings.Join(parts, "\x00"))
}
