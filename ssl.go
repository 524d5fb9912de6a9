package dcsssl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SSLStatus is the SSL state of an instance.
type SSLStatus struct {
	Enabled      bool
	IP           string
	Port         int       // the API sends a string; 0 when absent
	DomainName   string    // the name the instance's server certificate is for
	ExpiresAt    time.Time // parsed from ssl_expired_at; zero when absent or unparseable
	ExpiresAtRaw string    // ssl_expired_at exactly as sent
	Validated    bool
}

// SSLJob is the answer of an SSL switch: the asynchronous job that restarts
// the instance.
type SSLJob struct {
	JobID      string `json:"job_id"`
	InstanceID string `json:"instance_id"`
	Result     string `json:"result"`
}

// sslStatusBody is the query API's answer as sent.
type sslStatusBody struct {
	Enabled      *bool      `json:"enabled"`
	IP           string     `json:"ip"`
	Port         portNumber `json:"port"`
	DomainName   string     `json:"domain_name"`
	SSLExpiredAt string     `json:"ssl_expired_at"`
	SSLValidated bool       `json:"ssl_validated"`
}

func (b *sslStatusBody) validate() error {
	if b.Enabled == nil {
		return errors.New("has no enabled field")
	}
	return nil
}

// portNumber accepts the port as the API sends it, a string, or as a number.
type portNumber int

func (p *portNumber) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	if s == "" || s == "null" {
		*p = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %s is not a port number", excerpt(data))
	}
	*p = portNumber(n)
	return nil
}

// GetSSLStatus asks whether SSL is on for the instance, and for the name
// and address it serves TLS on.
func (c *Client) GetSSLStatus(ctx context.Context, instanceID string) (*SSLStatus, error) {
	var b sslStatusBody
	err := c.do(ctx, &call{
		op:         "get SSL status",
		method:     http.MethodGet,
		instanceID: instanceID,
		suffix:     "ssl",
		idempotent: true,
	}, &b)
	if err != nil {
		return nil, err
	}
	st := &SSLStatus{
		Enabled:      *b.Enabled,
		IP:           b.IP,
		Port:         int(b.Port),
		DomainName:   b.DomainName,
		ExpiresAtRaw: b.SSLExpiredAt,
		Validated:    b.SSLValidated,
	}
	st.ExpiresAt, _ = parseTimestamp(b.SSLExpiredAt)
	return st, nil
}

// timestampLayouts are the layouts ssl_expired_at and metadata expiries
// are read in; a layout without a zone is UTC.
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// parseTimestamp reads a service timestamp; ok is false for anything it
// does not know.
func parseTimestamp(s string) (t time.Time, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	for _, layout := range timestampLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// SetSSL turns SSL on or off. The instance restarts (seconds of
// disconnection) and the change takes effect asynchronously: use WaitForSSL
// to know when it has. SetSSL is retried only when the request surely did
// not reach the service (429, or no connection).
func (c *Client) SetSSL(ctx context.Context, instanceID string, enabled bool) (*SSLJob, error) {
	body := `{"enabled":false}`
	if enabled {
		body = `{"enabled":true}`
	}
	var job SSLJob
	err := c.do(ctx, &call{
		op:         "set SSL",
		method:     http.MethodPut,
		instanceID: instanceID,
		suffix:     "ssl",
		body:       body,
	}, &job)
	if err != nil {
		return nil, err
	}
	return &job, nil
}

// WaitForSSL polls the SSL status, first at once and then every poll
// interval (WithPollInterval), until it is enabled (or disabled, as asked).
// The context is its only deadline. Errors while the instance restarts (5xx,
// 429, no connection) are tolerated; any other error ends the wait at once.
func (c *Client) WaitForSSL(ctx context.Context, instanceID string, enabled bool) (*SSLStatus, error) {
	if err := checkID("instance ID", instanceID); err != nil {
		return nil, fmt.Errorf("dcsssl: wait for SSL: %w", err)
	}
	var lastErr error
	for {
		st, err := c.GetSSLStatus(ctx, instanceID)
		switch {
		case err == nil && st.Enabled == enabled:
			return st, nil
		case err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()):
			return nil, fmt.Errorf("dcsssl: wait for SSL enabled=%t: %w (last error: %v)", enabled, ctx.Err(), err)
		case err != nil && !transientWhileRestarting(err):
			return nil, err
		}
		lastErr = err
		if serr := c.sleepFor(ctx, c.pollInterval); serr != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("dcsssl: wait for SSL enabled=%t: %w (last error: %v)", enabled, serr, lastErr)
			}
			return nil, fmt.Errorf("dcsssl: wait for SSL enabled=%t: %w (SSL still enabled=%t)", enabled, serr, st.Enabled)
		}
	}
}

// transientWhileRestarting says whether err may be the instance restarting.
// The caller has ruled out its own context ending.
func transientWhileRestarting(err error) bool {
	var de *DCSError
	if errors.As(err, &de) {
		return de.StatusCode >= 500 || de.StatusCode == http.StatusTooManyRequests
	}
	var te *transportError
	var be *bodyError
	return errors.As(err, &te) || errors.As(err, &be)
}
