package presave

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSlug is the longest slug.
const MaxSlug = 100

// maxZoneName bounds a zone name before anything looks it up.
const maxZoneName = 64

var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// IsSlug reports whether s is a release slug: lower-case letters and
// digits in words joined by single hyphens, at most MaxSlug characters.
func IsSlug(s string) bool { return len(s) <= MaxSlug && slugPattern.MatchString(s) }

// Storable reports whether PostgreSQL can store v as text: valid UTF-8
// without NUL (it refuses both with an error).
func Storable(v string) bool { return utf8.ValidString(v) && !strings.ContainsRune(v, 0) }

// CheckZone accepts an IANA zone name that both Go and PostgreSQL know;
// field names it in the refusal (invalid_zone). Names PostgreSQL accepted
// are remembered (a few hundred at most), so a release-day burst of
// starts does not ask every time.
func (s *Service) CheckZone(ctx context.Context, field, name string) error {
	bad := invalid("invalid_zone", "%s must be an IANA time zone name such as Europe/Paris.", field)
	if name == "" || len(name) > maxZoneName || name == "Local" || strings.ContainsAny(name, " \\") {
		return bad
	}
	if _, err := time.LoadLocation(name); err != nil {
		return bad
	}
	if _, known := s.zones.Load(name); known {
		return nil
	}
	ok, err := s.store.ZoneKnown(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return bad
	}
	s.zones.Store(name, true)
	return nil
}
