package dcsssl

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says how often and how patiently a call is retried. Its zero
// fields take the defaults: 3 attempts, 200ms base delay, 5s max delay.
//
// The wait before attempt n+1 is a random duration in [0, min(MaxDelay,
// BaseDelay·2ⁿ⁻¹)] ("full jitter"); a Retry-After answer is honoured instead,
// capped at MaxDelay. No wait extends past the context's deadline: when the
// next one would, the call returns its last error at once.
type RetryPolicy struct {
	MaxAttempts int           // total attempts, 1 = no retry; default 3
	BaseDelay   time.Duration // default 200ms
	MaxDelay    time.Duration // default 5s
}

// Default retry policy values.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 200 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
)

// NoRetry is a policy of a single attempt.
var NoRetry = RetryPolicy{MaxAttempts: 1}

// WithRetry sets the retry policy; zero fields take the defaults.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) {
		if p.MaxAttempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
			c.optErr = errors.New("WithRetry: negative values in the policy")
			return
		}
		c.retry = p
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.BaseDelay > p.MaxDelay {
		p.BaseDelay = p.MaxDelay
	}
	return p
}

// backoff returns the wait after the attempt-th attempt failed. retryAfter,
// when positive, is what the server asked for. jitter(n) returns a number
// in [0, n).
func (p RetryPolicy) backoff(attempt int, retryAfter time.Duration, jitter func(int64) int64) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxDelay)
	}
	ceiling := p.MaxDelay
	if shift := attempt - 1; shift < 32 {
		if d := p.BaseDelay << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(jitter(int64(ceiling) + 1))
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent, malformed or in the past.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// retryable says whether err, the outcome of one attempt of cl, may be
// retried. It is the whole retry policy by kind of failure:
//
//   - 429: always, even for a call that changes the instance (a throttled
//     request was not carried out);
//   - 502, 503, 504: for calls that do not change the instance;
//   - no answer at all (connection refused or reset, EOF, an attempt's own
//     timeout): for calls that do not change the instance, and for the
//     others only when the request was not written;
//   - anything else, above all 401/403, other 4xx, 500 and context errors:
//     never.
func (c *Client) retryable(ctx context.Context, cl *call, err error) bool {
	// Only the caller's context ends the call: an attempt's own timeout
	// (http.Client.Timeout) also reports context.DeadlineExceeded, and is
	// retried like any attempt that got no answer.
	if ctx.Err() != nil {
		return false
	}
	var de *DCSError
	if errors.As(err, &de) {
		if de.StatusCode == http.StatusTooManyRequests {
			return true
		}
		return cl.idempotent && de.Temporary()
	}
	var te *transportError
	if errors.As(err, &te) {
		return cl.idempotent || !te.wrote
	}
	var be *bodyError
	if errors.As(err, &be) {
		return cl.idempotent
	}
	return false
}
