package dcsssl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingProvider hands out numbered credentials that expire ttl after the
// clock's now, or fails with err when set.
type countingProvider struct {
	mu      sync.Mutex
	calls   int
	now     func() time.Time
	ttl     time.Duration
	err     error
	gate    chan struct{} // when set, Retrieve waits for it
	entered chan struct{} // when set, Retrieve signals it started
}

func (p *countingProvider) Retrieve(ctx context.Context) (Credentials, error) {
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return Credentials{}, ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return Credentials{}, p.err
	}
	n := string(rune('0' + p.calls%10))
	return Credentials{AccessKey: "AK" + n, SecretKey: "SK" + n, SecurityToken: "TOKEN" + n, Expires: p.now().Add(p.ttl)}, nil
}

func (p *countingProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(p CredentialsProvider, clock *fakeClock, logger *slog.Logger) *credentialCache {
	return newCredentialCache(p, DefaultRefreshWindow, clock.now, logger)
}

func TestCredentialsRefreshOnlyInsideTheWindow(t *testing.T) {
	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: time.Hour}
	cc := newCache(p, clock, nil)

	c, err := cc.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK1", c.AccessKey)

	clock.advance(44 * time.Minute) // 16 minutes left: outside the window
	c, err = cc.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK1", c.AccessKey)
	assert.Equal(t, 1, p.count())

	clock.advance(2 * time.Minute) // 14 minutes left: inside
	c, err = cc.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK2", c.AccessKey)
	assert.Equal(t, 2, p.count())

	clock.advance(2 * time.Hour) // past expiry
	c, err = cc.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK3", c.AccessKey)
}

func TestCredentialsNeverExpiringAreRetrievedOnce(t *testing.T) {
	var calls atomic.Int32
	p := providerFunc(func(context.Context) (Credentials, error) {
		calls.Add(1)
		return Credentials{AccessKey: "a", SecretKey: "s"}, nil
	})
	cc := newCache(p, &fakeClock{t: testNow}, nil)
	for i := 0; i < 10; i++ {
		_, err := cc.get(context.Background())
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), calls.Load())
}

type providerFunc func(context.Context) (Credentials, error)

func (f providerFunc) Retrieve(ctx context.Context) (Credentials, error) { return f(ctx) }

func TestCredentialsOneRetrieveForManyCallers(t *testing.T) {
	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: time.Hour, gate: make(chan struct{}), entered: make(chan struct{}, 200)}
	cc := newCache(p, clock, nil)

	var wg sync.WaitGroup
	results := make(chan Credentials, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cc.get(context.Background())
			assert.NoError(t, err)
			results <- c
		}()
	}
	<-p.entered // one caller is inside Retrieve; let the others pile up
	time.Sleep(20 * time.Millisecond)
	close(p.gate)
	wg.Wait()
	close(results)
	assert.Equal(t, 1, p.count())
	for c := range results {
		assert.Equal(t, "AK1", c.AccessKey)
	}
}

func TestCredentialsWaiterHonoursItsOwnContext(t *testing.T) {
	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: time.Hour, gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	cc := newCache(p, clock, nil)
	done := make(chan error, 1)
	go func() { _, err := cc.get(context.Background()); done <- err }()
	<-p.entered

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := cc.get(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	close(p.gate)
	assert.NoError(t, <-done)
}

func TestCredentialsLeaderCancelledOthersCarryOn(t *testing.T) {
	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: time.Hour, gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	cc := newCache(p, clock, nil)

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() { _, err := cc.get(leaderCtx); leaderDone <- err }()
	<-p.entered

	waiterDone := make(chan error, 1)
	go func() { _, err := cc.get(context.Background()); waiterDone <- err }()
	time.Sleep(10 * time.Millisecond)
	cancelLeader()
	assert.ErrorIs(t, <-leaderDone, context.Canceled)

	<-p.entered // the waiter became the leader of a new Retrieve
	close(p.gate)
	assert.NoError(t, <-waiterDone)
}

func TestCredentialsStaleButValidFallback(t *testing.T) {
	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: time.Hour}
	var logs bytes.Buffer
	cc := newCache(p, clock, slog.New(slog.NewTextHandler(&logs, nil)))
	_, err := cc.get(context.Background())
	require.NoError(t, err)

	p.err = errors.New("metadata service down")
	clock.advance(50 * time.Minute) // inside the window, still valid
	c, err := cc.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "AK1", c.AccessKey)
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "metadata service down")
	assert.NotContains(t, logs.String(), "SK1")
	assert.NotContains(t, logs.String(), "TOKEN1")

	clock.advance(11 * time.Minute) // expired
	_, err = cc.get(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, p.err)
	assert.Contains(t, err.Error(), "refreshing credentials: metadata service down")
}

func TestCredentialsBadProviderAnswers(t *testing.T) {
	clock := &fakeClock{t: testNow}
	for name, c := range map[string]Credentials{
		"no AK":   {SecretKey: "s"},
		"no SK":   {AccessKey: "a"},
		"expired": {AccessKey: "a", SecretKey: "s", Expires: testNow.Add(-time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			cc := newCache(StaticCredentials(c), clock, nil)
			_, err := cc.get(context.Background())
			require.Error(t, err)
			assert.NotContains(t, err.Error(), `"s"`)
		})
	}
}

func TestClientWithProvider(t *testing.T) {
	_, err := NewClient(testProject, Credentials{}, WithRegion("cn-north-4"))
	require.Error(t, err, "neither credentials nor a provider")

	clock := &fakeClock{t: testNow}
	p := &countingProvider{now: clock.now, ttl: 20 * time.Minute}
	tb := setup(t, Credentials{}, WithCredentialsProvider(p))
	tb.c.now = clock.now
	var seen []string
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Header.Get("X-Security-Token")+" "+strings.Fields(r.Header.Get("Authorization"))[1])
		if len(seen) == 1 {
			clock.advance(10 * time.Minute) // the next attempt is inside the window
			return jsonResponder(503, "", "")(r)
		}
		return jsonResponder(200, `{"link":"https://l/x"}`, "")(r)
	})
	_, err = tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, []string{"TOKEN1 Access=AK1,", "TOKEN2 Access=AK2,"}, seen, "each attempt signs with the credentials current then")
	assert.Equal(t, 2, p.count())
}

func TestClientProviderFailureWrapped(t *testing.T) {
	boom := errors.New("no credentials today")
	tb := setup(t, Credentials{}, WithCredentialsProvider(providerFunc(func(context.Context) (Credentials, error) { return Credentials{}, boom })))
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	assert.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "dcsssl: download SSL cert: refreshing credentials: no credentials today")
	assert.Equal(t, 0, tb.mock.GetTotalCallCount())
}

func TestEnvCredentialsReadAtEachRetrieve(t *testing.T) {
	t.Setenv(EnvAccessKey, "ak1")
	t.Setenv(EnvSecretKey, "sk1")
	t.Setenv(EnvSecurityToken, "")
	p := EnvCredentials()
	c, err := p.Retrieve(context.Background())
	require.NoError(t, err)
	assert.Equal(t, Credentials{AccessKey: "ak1", SecretKey: "sk1"}, c)

	t.Setenv(EnvAccessKey, "ak2")
	t.Setenv(EnvSecurityToken, "tok2")
	c, err = p.Retrieve(context.Background())
	require.NoError(t, err)
	assert.Equal(t, Credentials{AccessKey: "ak2", SecretKey: "sk1", SecurityToken: "tok2"}, c)

	t.Setenv(EnvSecretKey, "")
	_, err = p.Retrieve(context.Background())
	assert.ErrorContains(t, err, EnvSecretKey)
}

func TestNewClientFromEnvMetadataOnlyWhenAsked(t *testing.T) {
	for _, k := range []string{EnvAccessKey, EnvSecretKey, EnvSecurityToken, EnvCredentialType} {
		t.Setenv(k, "")
	}
	t.Setenv(EnvProjectID, "p1")
	t.Setenv(EnvRegion, "cn-north-4")

	_, err := NewClientFromEnv()
	require.Error(t, err, "never silently")
	assert.Contains(t, err.Error(), EnvAccessKey)

	c, err := NewClientFromEnv(WithMetadataFallback())
	require.NoError(t, err)
	_, isMetadata := c.provider.(*metadataProvider)
	assert.True(t, isMetadata)

	t.Setenv(EnvCredentialType, "metadata")
	c, err = NewClientFromEnv()
	require.NoError(t, err)
	_, isMetadata = c.provider.(*metadataProvider)
	assert.True(t, isMetadata)
}
