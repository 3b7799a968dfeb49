// Package domain holds AuraOS's event types, value types with their validation,
// pure decision functions and the one coded error type every edge translates.
// It depends on the standard library only.
package domain

import (
	"errors"
	"fmt"
)

// Error codes. The Socket.IO adapter sends them to clients unchanged in `error`
// events and acknowledgements; any error that is not an *Error is reported as
// EINTERNAL.
const (
	// EINVALID marks a payload of the wrong type or shape, a missing field,
	// text that is empty or too long, or an unknown enum value.
	EINVALID = "INVALID_PAYLOAD"
	// EFORBIDDEN marks acting as another user, an admin-only event without
	// admin rights, or a private room.
	EFORBIDDEN = "FORBIDDEN"
	// EAUTH marks bad or missing credentials.
	EAUTH = "AUTH_FAILED"
	// ERATELIMITED marks a socket over its rate limit.
	ERATELIMITED = "RATE_LIMITED"
	// EUNAVAILABLE marks a store or database that cannot be reached; nothing
	// was stored.
	EUNAVAILABLE = "UNAVAILABLE"
	// ECONFLICT marks a write that lost an optimistic-concurrency race or reused
	// an identifier; the caller may retry after reloading.
	ECONFLICT = "CONFLICT"
	// EINTERNAL marks anything else. Its details belong in the log, never in a
	// message to a client.
	EINTERNAL = "INTERNAL"
)

// Error is the one coded error of the application. Code is one of the E*
// constants; Message is safe to show to the client that caused it; Field names
// the offending payload field when there is one; Cause keeps the underlying
// error for logs and errors.Is/As, and is never shown to clients.
type Error struct {
	Code    string
	Message string
	Field   string
	Cause   error
}

// Error implements the error interface. It includes the cause, so it is meant
// for logs; clients get ErrorMessage instead.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause, so errors.Is and errors.As see through an *Error.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one payload field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with the given code and client-safe message that
// keeps cause for logs.
func WrapError(code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a nil
// error and EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, and a generic text for any other error, whose details must stay in
// the log.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the payload field named by the first *Error in err's
// chain, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
