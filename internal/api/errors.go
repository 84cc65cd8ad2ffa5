package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
)

// Error is an API error: an HTTP status, a machine-readable code and a
// sentence for a person. Handlers return it; the error handler writes it
// as {"error":{"code":...,"message":...}}.
type Error struct {
	Status  int
	Code    string
	Message string
	// Err is the cause, for the log only (never shown to the client).
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error with a formatted message.
func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// AsError turns any error into an *Error: ours pass through, echo's own
// (404, 405, 413, 429, ...) get a code, and everything else is a 500 whose
// cause is logged but not shown.
func AsError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var pe *presave.Error
	if errors.As(err, &pe) {
		return &Error{Status: statusOf(pe.Kind), Code: pe.Code, Message: pe.Message, Err: pe.Err}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromEchoError(he)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusServiceUnavailable, Code: "timeout", Message: "The request took too long; please try again.", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "Something went wrong on our side; please try again later.", Err: err}
}

// statusOf is the HTTP status of a use case's refusal: the one mapping
// from the application's kinds of error to HTTP.
func statusOf(k presave.Kind) int {
	switch k {
	case presave.KindInvalid:
		return http.StatusBadRequest
	case presave.KindDeclined:
		return http.StatusForbidden
	case presave.KindUnprocessable:
		return http.StatusUnprocessableEntity
	case presave.KindProvider:
		return http.StatusBadGateway
	case presave.KindNotFound:
		return http.StatusNotFound
	case presave.KindConflict:
		return http.StatusConflict
	case presave.KindUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

func fromEchoError(he *echo.HTTPError) *Error {
	e := &Error{Status: he.Code, Err: he.Internal}
	switch he.Code {
	case http.StatusNotFound:
		e.Code, e.Message = "not_found", "There is nothing at this address."
	case http.StatusMethodNotAllowed:
		e.Code, e.Message = "method_not_allowed", "This address does not accept this method."
	case http.StatusRequestEntityTooLarge:
		e.Code, e.Message = "body_too_large", fmt.Sprintf("The request body is larger than %d bytes.", BodyLimit)
	case http.StatusTooManyRequests:
		e.Code, e.Message = "rate_limited", "Too many requests from your address; please wait a moment."
	case http.StatusUnsupportedMediaType:
		e.Code, e.Message = "unsupported_media_type", "Send the request body as application/json."
	case http.StatusUnauthorized:
		e.Code, e.Message = "unauthorized", "Credentials are missing or wrong."
	case http.StatusForbidden:
		e.Code, e.Message = "forbidden", "This request is not allowed."
	case http.StatusServiceUnavailable:
		e.Code, e.Message = "timeout", "The request took too long; please try again."
	default:
		if he.Code >= 500 {
			e.Code, e.Message = "internal_error", "Something went wrong on our side; please try again later."
		} else {
			e.Code, e.Message = "bad_request", http.StatusText(he.Code)
		}
	}
	return e
}

// handleError is the echo HTTPErrorHandler, the one error renderer:
// every failure, including echo's own 404/405/413 and the rate limiter's
// 429, answers in the one error shape, as JSON, or as a page a fan
// understands on the fan page's routes.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := AsError(err)
	if e.Status >= 500 {
		s.log.ErrorContext(ctxOf(c), "request failed", "request_id", requestID(c), "route", routeOf(c), "code", e.Code, "err", e.Err)
	}
	if isPage, _ := c.Get(pageKey).(bool); isPage && s.page != nil && c.Request().Method != http.MethodHead {
		back, _ := c.Get(backKey).(string)
		if werr := s.page.renderError(c, e, back); werr != nil {
			s.log.WarnContext(ctxOf(c), "writing error page", "request_id", requestID(c), "err", werr)
		}
		return
	}
	if e.Status == http.StatusUnauthorized && c.Get(wantBasicAuth) != nil {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="presave monitoring", charset="UTF-8"`)
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(e.Status)
	} else {
		werr = c.JSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
	}
	if werr != nil {
		s.log.WarnContext(ctxOf(c), "writing error response", "request_id", requestID(c), "err", werr)
	}
}
