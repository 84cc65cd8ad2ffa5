package seal_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/presave/presave/internal/seal"
)

func key(t *testing.T, id string) string {
	t.Helper()
	k := make([]byte, seal.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(k)
}

func TestRoundTrip(t *testing.T) {
	r, err := seal.ParseRing(key(t, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	aad := seal.Owner("token", "fan-1", "spotify")
	for _, pt := range []string{"", "x", "AQD-refresh-token-" + strings.Repeat("z", 400)} {
		id, ct, err := r.Seal([]byte(pt), aad)
		if err != nil {
			t.Fatal(err)
		}
		if id != "k1" {
			t.Errorf("key ID = %q, want k1", id)
		}
		// Only a plaintext long enough not to occur in random bytes by
		// chance: a one-byte plaintext is in a 29-byte ciphertext about
		// one time in nine (this check used to fail that often).
		if len(pt) >= 16 && bytes.Contains(ct, []byte(pt)) {
			t.Errorf("ciphertext contains the plaintext")
		}
		got, err := r.Open(ct, aad)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if string(got) != pt {
			t.Errorf("open = %q, want %q", got, pt)
		}
	}
}

func TestNonceIsFresh(t *testing.T) {
	r, _ := seal.ParseRing(key(t, "k1"))
	_, a, _ := r.Seal([]byte("same"), nil)
	_, b, _ := r.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
}

func TestTamperAnyByte(t *testing.T) {
	r, _ := seal.ParseRing(key(t, "k1"))
	aad := seal.Owner("token", "fan-1", "youtube")
	_, ct, err := r.Seal([]byte("refresh-token-value"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := r.Open(bad, aad); err == nil {
			t.Fatalf("flipping byte %d of %d still opened", i, len(ct))
		}
	}
	if _, err := r.Open(ct[:len(ct)-1], aad); err == nil {
		t.Fatal("truncated ciphertext opened")
	}
}

func TestBoundToOwner(t *testing.T) {
	r, _ := seal.ParseRing(key(t, "k1"))
	_, ct, _ := r.Seal([]byte("tok"), seal.Owner("token", "fan-1", "spotify"))
	for _, other := range [][]byte{
		seal.Owner("token", "fan-2", "spotify"),
		seal.Owner("token", "fan-1", "youtube"),
		seal.Owner("token", "fan-", "1spotify"),
		nil,
	} {
		if _, err := r.Open(ct, other); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("opened under owner %q: err = %v, want ErrOpen", other, err)
		}
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := key(t, "k1"), key(t, "k2")
	old, _ := seal.ParseRing(k1)
	aad := seal.Owner("token", "f", "spotify")
	_, ct, _ := old.Seal([]byte("tok"), aad)

	both, err := seal.ParseRing(k2 + "," + k1)
	if err != nil {
		t.Fatal(err)
	}
	if both.Primary() != "k2" {
		t.Fatalf("primary = %q, want k2", both.Primary())
	}
	pt, err := both.Open(ct, aad)
	if err != nil || string(pt) != "tok" {
		t.Fatalf("old ciphertext under new ring: %q, %v", pt, err)
	}
	id, ct2, _ := both.Seal(pt, aad)
	if id != "k2" {
		t.Fatalf("resealed under %q", id)
	}
	onlyNew, _ := seal.ParseRing(k2)
	if _, err := onlyNew.Open(ct2, aad); err != nil {
		t.Fatalf("resealed value needs the old key: %v", err)
	}
	if _, err := onlyNew.Open(ct, aad); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("old value without old key: err = %v, want ErrUnknownKey", err)
	}
}

func TestParseRingErrors(t *testing.T) {
	short := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 16))
	good := key(t, "k1")
	tests := []struct {
		name, spec, want string
	}{
		{"empty", "", "no token key"},
		{"no id", base64.StdEncoding.EncodeToString(make([]byte, 32)), "id:base64key"},
		{"short key", short, "16 bytes, want 32"},
		{"not base64", "k1:***", "not valid base64"},
		{"bad id", "k 1:" + strings.SplitN(good, ":", 2)[1], "key ID"},
		{"duplicate id", good + "," + good, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := seal.ParseRing(tt.spec)
			if err == nil {
				t.Fatalf("ParseRing(%q) succeeded", tt.spec)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	_, err := seal.ParseRing("")
	if !strings.Contains(err.Error(), "/dev/urandom") {
		t.Errorf("error %q does not say how to make a key", err)
	}
}
