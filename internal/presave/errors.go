package presave

import "fmt"

// Kind is what sort of refusal an Error is; transports map it to their
// own vocabulary (internal/api to an HTTP status, in one place).
type Kind int

// Kinds of refusal.
const (
	// KindInvalid: the request itself is wrong; the caller can fix it.
	KindInvalid Kind = iota + 1
	// KindNotFound: the thing does not exist, or is not the caller's.
	KindNotFound
	// KindConflict: the thing's state does not allow it now.
	KindConflict
	// KindUnauthenticated: the caller's credential no longer names anyone.
	KindUnauthenticated
	// KindDeclined: the fan said no (at the provider's consent screen).
	KindDeclined
	// KindUnprocessable: well-formed, but it cannot work (a Spotify
	// pre-save due after its grant would have expired).
	KindUnprocessable
	// KindProvider: the provider failed or answered what we cannot use.
	KindProvider
)

// Error is a use case's refusal: a kind, a machine-readable code and a
// sentence for a person. Nothing was changed.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// Err is the cause, for the log only (never shown).
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(code, format string, args ...any) *Error {
	return errorf(KindInvalid, code, format, args...)
}

func errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The refusals of the use cases here.
var (
	ErrPresaveNotFound = errorf(KindNotFound, "presave_not_found", "You have no such pre-save.")
	ErrFanGone         = errorf(KindUnauthenticated, "fan_token_invalid", "This fan token is not valid (or the account was deleted).")
	ErrReleaseNotFound = errorf(KindNotFound, "release_not_found", "There is no such release.")
)
