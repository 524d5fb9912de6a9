package dcsssl

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Each is reachable with errors.Is from the errors that the
// Client returns.
var (
	// ErrSSLNotSupported holds for a DCS.4201 answer: the instance's engine
	// or edition has no SSL (only DCS Redis 6.0/7.0 basic editions do).
	ErrSSLNotSupported = errors.New("dcsssl: instance does not support SSL")

	// ErrUnauthorized holds for a 401 or 403 answer: the signature, the AK or
	// the token was refused. Such calls are never retried: an AK that fails
	// five times in a row is locked for five minutes.
	ErrUnauthorized = errors.New("dcsssl: request not authorized")

	// ErrNotFound holds for a 404 answer: an unknown instance or API.
	ErrNotFound = errors.New("dcsssl: not found")

	// ErrThrottled holds for a 429 answer.
	ErrThrottled = errors.New("dcsssl: request throttled")

	// ErrInvalidInput holds when an argument is refused before any request
	// is made (an empty or malformed ID, a nil certificate, ...).
	ErrInvalidInput = errors.New("dcsssl: invalid input")

	// ErrInvalidResponse holds when a 2xx answer cannot be used: not JSON,
	// a required field missing, or a body past its size limit.
	ErrInvalidResponse = errors.New("dcsssl: invalid response")

	// ErrResponseTooLarge holds when an answer is larger than the limit for
	// its kind; reading stopped at the limit.
	ErrResponseTooLarge = errors.New("dcsssl: response too large")

	// ErrLinkExpired holds when a presigned download link is past its
	// Expires time; it is refused before any request is made.
	ErrLinkExpired = errors.New("dcsssl: download link expired")
)

// codeSSLNotSupported is the DCS error code for an instance without SSL.
const codeSSLNotSupported = "DCS.4201"

// DCSError is a non-2xx answer from the DCS API or the API gateway in front
// of it. Reach it with errors.As; branch on it with errors.Is and the
// sentinels above.
type DCSError struct {
	StatusCode  int    // HTTP status
	ErrorCode   string // "DCS.4201", "APIGW.0301", ...; empty when the body had none
	ErrorMsg    string
	ErrorExtMsg string
	RequestID   string // X-Request-Id header, else the body's request_id

	// Operation names the call that failed, e.g. "download SSL cert".
	Operation string
}

// Error reads like
// "dcsssl: download SSL cert: 400 DCS.4201: Do not support SSL. (request id 3f2a…)".
func (e *DCSError) Error() string {
	var b strings.Builder
	b.WriteString("dcsssl: ")
	if e.Operation != "" {
		b.WriteString(e.Operation)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d", e.StatusCode)
	if e.ErrorCode != "" {
		b.WriteByte(' ')
		b.WriteString(e.ErrorCode)
	}
	msg := e.ErrorMsg
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if e.ErrorExtMsg != "" {
		b.WriteString(" (")
		b.WriteString(e.ErrorExtMsg)
		b.WriteByte(')')
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteByte(')')
	}
	return b.String()
}

// Is reports whether the answer is of the kind a sentinel names.
func (e *DCSError) Is(target error) bool {
	switch target {
	case ErrSSLNotSupported:
		return e.ErrorCode == codeSSLNotSupported
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrThrottled:
		return e.StatusCode == http.StatusTooManyRequests
	}
	return false
}

// Temporary reports whether the answer is one that the same request may
// get right later: throttling or a gateway that could not reach DCS.
func (e *DCSError) Temporary() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// attemptsError is the final error of a call that was tried more than once.
type attemptsError struct {
	err      error
	attempts int
}

func (e *attemptsError) Error() string {
	return fmt.Sprintf("%s (after %d attempts)", e.err.Error(), e.attempts)
}

func (e *attemptsError) Unwrap() error { return e.err }

// excerptLen bounds the part of an unexpected body quoted in an error.
const excerptLen = 200

// excerpt returns a short, printable, valid UTF-8 quote of body for error
// messages: at most excerptLen bytes, and an ellipsis when cut.
func excerpt(body []byte) string {
	var b strings.Builder
	b.Grow(min(len(body), excerptLen) + len("…"))
	cut := false
	for len(body) > 0 {
		r, n := utf8.DecodeRune(body)
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			r = ' '
		case r < 0x20 || r == 0x7f:
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > excerptLen {
			cut = true
			break
		}
		b.WriteRune(r)
		body = body[n:]
	}
	s := strings.TrimSpace(b.String())
	if cut {
		s += "…"
	}
	return s
}
