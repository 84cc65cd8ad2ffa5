package presave

import "fmt"

// Kind is what sort of refusal an Error is; transports map it to their
// own vocabulary (internal/api to an HTTP status, in one place).
type Kind int

// Kinds of refusal.
const (
	// KindNotFound: the thing does not exist, or is not the caller's.
	KindNotFound Kind = iota + 1
	// KindConflict: the thing's state does not allow it now.
	KindConflict
	// KindUnauthenticated: the caller's credential no longer names anyone.
	KindUnauthenticated
)

// Error is a use case's refusal: a kind, a machine-readable code and a
// sentence for a person. Nothing was changed.
type Error struct {
	Kind    Kind
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The refusals of the use cases here.
var (
	ErrPresaveNotFound = errorf(KindNotFound, "presave_not_found", "You have no such pre-save.")
	ErrFanGone         = errorf(KindUnauthenticated, "fan_token_invalid", "This fan token is not valid (or the account was deleted).")
	ErrReleaseNotFound = errorf(KindNotFound, "release_not_found", "There is no such release.")
)
