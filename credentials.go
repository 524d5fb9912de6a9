package dcsssl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Credentials sign requests: an AK/SK pair and, for temporary credentials, a
// security token and an expiry. Printed with any fmt verb they show the
// access key only.
type Credentials struct {
	AccessKey     string
	SecretKey     string
	SecurityToken string    // temporary credentials; sent as X-Security-Token when set
	Expires       time.Time // zero: never expires
}

// String shows the access key and whether the secrets are set, never them.
func (c Credentials) String() string {
	s := fmt.Sprintf("dcsssl.Credentials{AccessKey: %q, SecretKey: %s, SecurityToken: %s",
		c.AccessKey, redacted(c.SecretKey), redacted(c.SecurityToken))
	if !c.Expires.IsZero() {
		s += ", Expires: " + c.Expires.UTC().Format(time.RFC3339)
	}
	return s + "}"
}

// Format prints String for every verb, %#v and %d included.
func (c Credentials) Format(f fmt.State, verb rune) { formatRedacted(f, c.String()) }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// expired reports whether the credentials are past their expiry at now.
func (c Credentials) expired(now time.Time) bool {
	return !c.Expires.IsZero() && !now.Before(c.Expires)
}

// CredentialsProvider is a source of credentials: static, the environment,
// the ECS metadata service, or your own. The Client caches what Retrieve
// returns and calls it again only when the credentials near their expiry.
type CredentialsProvider interface {
	Retrieve(ctx context.Context) (Credentials, error)
}

// DefaultRefreshWindow is how long before their expiry cached credentials
// are refreshed.
const DefaultRefreshWindow = 15 * time.Minute

// WithCredentialsProvider makes the client get its credentials from p; the
// creds argument of NewClient is then ignored and may be zero.
func WithCredentialsProvider(p CredentialsProvider) Option {
	return func(c *Client) {
		if p == nil {
			c.optErr = errors.New("WithCredentialsProvider: nil provider")
			return
		}
		c.provider = p
	}
}

// WithRefreshWindow sets how long before their expiry cached credentials
// are refreshed; the default is DefaultRefreshWindow.
func WithRefreshWindow(d time.Duration) Option {
	return func(c *Client) {
		if d <= 0 {
			c.optErr = fmt.Errorf("WithRefreshWindow: %v is not positive", d)
			return
		}
		c.refreshWindow = d
	}
}

// WithMetadataFallback makes NewClientFromEnv use the ECS metadata service
// (MetadataCredentials) when HUAWEICLOUD_SDK_AK is not set.
func WithMetadataFallback() Option {
	return func(c *Client) { c.metadataFallback = true }
}

type staticProvider Credentials

// Format keeps the provider's secrets out of prints, as for Credentials.
func (p staticProvider) Format(f fmt.State, verb rune) { formatRedacted(f, Credentials(p).String()) }

func (p staticProvider) Retrieve(context.Context) (Credentials, error) {
	return Credentials(p), nil
}

// StaticCredentials returns a provider that always returns c.
func StaticCredentials(c Credentials) CredentialsProvider { return staticProvider(c) }

type envProvider struct{}

func (envProvider) Retrieve(context.Context) (Credentials, error) {
	c := Credentials{
		AccessKey:     os.Getenv(EnvAccessKey),
		SecretKey:     os.Getenv(EnvSecretKey),
		SecurityToken: os.Getenv(EnvSecurityToken),
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("dcsssl: environment credentials: %s and %s must both be set", EnvAccessKey, EnvSecretKey)
	}
	return c, nil
}

// EnvCredentials returns a provider that reads HUAWEICLOUD_SDK_AK,
// HUAWEICLOUD_SDK_SK and HUAWEICLOUD_SDK_SECURITY_TOKEN at each Retrieve.
func EnvCredentials() CredentialsProvider { return envProvider{} }

// credentialCache holds the credentials in use and refreshes them from the
// provider, once for all callers, when they near their expiry.
type credentialCache struct {
	provider CredentialsProvider
	window   time.Duration
	now      func() time.Time
	logger   *slog.Logger

	cur atomic.Pointer[Credentials] // nil until the first Retrieve

	mu       sync.Mutex
	inflight *refresh // the Retrieve under way, if any
}

// refresh is one Retrieve that every caller needing it waits for.
type refresh struct {
	done  chan struct{}
	creds Credentials
	err   error
}

func newCredentialCache(p CredentialsProvider, window time.Duration, now func() time.Time, logger *slog.Logger) *credentialCache {
	return &credentialCache{provider: p, window: window, now: now, logger: logger}
}

// prime sets credentials known without a Retrieve.
func (cc *credentialCache) prime(c Credentials) { cc.cur.Store(&c) }

// fresh reports whether c can be used without a refresh at now.
func (cc *credentialCache) fresh(c *Credentials, now time.Time) bool {
	return c != nil && (c.Expires.IsZero() || now.Before(c.Expires.Add(-cc.window)))
}

// get returns the credentials to sign with now, refreshing them first when
// they are inside the refresh window or past their expiry.
func (cc *credentialCache) get(ctx context.Context) (Credentials, error) {
	for {
		cur := cc.cur.Load()
		now := cc.now()
		if cc.fresh(cur, now) {
			return *cur, nil
		}
		r, leader := cc.join()
		if leader {
			cc.run(ctx, r)
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return Credentials{}, fmt.Errorf("waiting for credentials: %w", ctx.Err())
		}
		if r.err == nil {
			return r.creds, nil
		}
		// The leader's own context ended its Retrieve: ours has not, so try
		// again rather than fail with someone else's cancellation.
		if !leader && ctx.Err() == nil && (errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) {
			continue
		}
		if cur != nil && !cur.expired(cc.now()) {
			if cc.logger != nil {
				cc.logger.LogAttrs(ctx, slog.LevelWarn, "dcsssl credentials refresh failed; using cached credentials until they expire",
					slog.Time("expires", cur.Expires), slog.String("error", r.err.Error()))
			}
			return *cur, nil
		}
		return Credentials{}, fmt.Errorf("refreshing credentials: %w", r.err)
	}
}

// join returns the refresh under way, or starts a new one that the caller
// must run (leader).
func (cc *credentialCache) join() (r *refresh, leader bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.inflight != nil {
		return cc.inflight, false
	}
	// Another caller may have finished a refresh since our Load.
	if cur := cc.cur.Load(); cc.fresh(cur, cc.now()) {
		r := &refresh{done: make(chan struct{}), creds: *cur}
		close(r.done)
		return r, false
	}
	cc.inflight = &refresh{done: make(chan struct{})}
	return cc.inflight, true
}

// run calls Retrieve in the caller's goroutine (no goroutine outlives the
// call) and publishes the outcome to everyone waiting.
func (cc *credentialCache) run(ctx context.Context, r *refresh) {
	c, err := cc.provider.Retrieve(ctx)
	if err == nil {
		switch {
		case c.AccessKey == "" || c.SecretKey == "":
			err = errors.New("provider returned credentials without an access key or secret key")
		case c.expired(cc.now()):
			err = fmt.Errorf("provider returned credentials that expired at %s", c.Expires.UTC().Format(time.RFC3339))
		}
	}
	r.creds, r.err = c, err
	if err == nil {
		cc.cur.Store(&c)
	}
	cc.mu.Lock()
	cc.inflight = nil
	cc.mu.Unlock()
	close(r.done)
}
