// Package reliability tests the client as a whole against dcstest: under
// load with injected faults, against servers that never finish, across
// credential rotation, and for secrets in everything it prints. It is a
// module of its own so that its test-only dependency (goleak) stays out of
// the library's go.mod.
package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every call
// must clean up after itself, whatever the server did.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client for srv whose transport keeps up to idle
// connections per host, and closes its idle connections at the end.
func newClient(t *testing.T, srv *dcstest.Server, idle int, opts ...dcsssl.Option) *dcsssl.Client {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = idle
	t.Cleanup(tr.CloseIdleConnections)
	opts = append([]dcsssl.Option{dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(&http.Client{Transport: tr})}, opts...)
	c, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials, opts...)
	require.NoError(t, err)
	return c
}

func TestLoadWithInjected503s(t *testing.T) {
	const goroutines, calls = 64, 50
	srv := dcstest.NewServer(dcstest.WithSeed(42))
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	srv.InjectFault(dcstest.OpDownload, dcstest.Fault{Rate: 0.1, Status: http.StatusServiceUnavailable,
		Body: `{"error_code":"APIGW.0202","error_msg":"backend unavailable"}`})
	// Eight attempts: a call fails only after eight 503s in a row (1e-8).
	client := newClient(t, srv, goroutines, dcsssl.WithRetry(dcsssl.RetryPolicy{MaxAttempts: 8, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}))

	var failures atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				if _, err := client.DownloadSSLCert(context.Background(), "inst-1"); err != nil {
					failures.Add(1)
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failures.Load())

	reqs := srv.RequestsFor(dcstest.OpDownload)
	faults := 0
	for _, r := range reqs {
		if r.Fault {
			faults++
		}
	}
	assert.Equal(t, goroutines*calls, len(reqs)-faults, "every call succeeded once")
	assert.InDelta(t, 0.1, float64(faults)/float64(len(reqs)), 0.03, "about 10%% of requests were faulted")
	// Bodies drained and closed: the connections are reused rather than
	// one opened per request.
	assert.LessOrEqual(t, srv.ConnectionCount(), 2*goroutines, "new TCP connections for %d requests", len(reqs))
}

// trickle answers with a byte every 10ms and never finishes.
func trickle(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		_, _ = w.Write([]byte(`{"link":"`))
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				_, _ = w.Write([]byte("x"))
				w.(http.Flusher).Flush()
			}
		}
	}
}

func TestTricklingServerStoppedByDeadline(t *testing.T) {
	const link = "/b/ssl.zip?Expires=4102444800&Signature=SIG"
	cases := []struct {
		name   string
		status int
		call   func(ctx context.Context, c *dcsssl.Client, url string) error
	}{
		{"API 200", 200, func(ctx context.Context, c *dcsssl.Client, _ string) error {
			_, err := c.DownloadSSLCert(ctx, "inst-1")
			return err
		}},
		{"API 503", 503, func(ctx context.Context, c *dcsssl.Client, _ string) error {
			_, err := c.DownloadSSLCert(ctx, "inst-1")
			return err
		}},
		{"download link", 200, func(ctx context.Context, c *dcsssl.Client, url string) error {
			_, err := c.FetchCABundle(ctx, &dcsssl.SSLCert{Link: url + link})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(trickle(tc.status))
			defer srv.Close()
			client, err := dcsssl.NewClient("proj", dcsssl.Credentials{AccessKey: "a", SecretKey: "s"},
				dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = tc.call(ctx, client, srv.URL)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.NotContains(t, err.Error(), "SIG")
			assert.Less(t, time.Since(start), 2*time.Second)
		})
	}
}

func TestRetriesAgainstTheFake(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	client := newClient(t, srv, 2, dcsssl.WithRetry(dcsssl.RetryPolicy{BaseDelay: time.Millisecond}))
	ctx := context.Background()

	t.Run("429 with Retry-After, then through", func(t *testing.T) {
		srv.ResetRecords()
		srv.InjectFault(dcstest.OpDownload, dcstest.Fault{Times: 1, Status: 429, Header: http.Header{"Retry-After": {"1"}},
			Body: `{"error_code":"APIGW.0308","error_msg":"throttled"}`})
		start := time.Now()
		_, err := client.DownloadSSLCert(ctx, "inst-1")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After honoured")
		assert.Len(t, srv.RequestsFor(dcstest.OpDownload), 2)
	})
	t.Run("401 never retried", func(t *testing.T) {
		srv.ResetRecords()
		bad, err := dcsssl.NewClient(srv.ProjectID, dcsssl.Credentials{AccessKey: srv.Credentials.AccessKey, SecretKey: "wrong"},
			dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
		require.NoError(t, err)
		_, err = bad.DownloadSSLCert(ctx, "inst-1")
		assert.ErrorIs(t, err, dcsssl.ErrUnauthorized)
		assert.Len(t, srv.Requests(), 1)
	})
	t.Run("SetSSL not retried on 503", func(t *testing.T) {
		srv.ResetRecords()
		srv.InjectFault(dcstest.OpSetSSL, dcstest.Fault{Times: 1, Status: 503})
		_, err := client.SetSSL(ctx, "inst-1", true)
		var de *dcsssl.DCSError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, 503, de.StatusCode)
		assert.Len(t, srv.RequestsFor(dcstest.OpSetSSL), 1)
	})
	t.Run("SetSSL not retried when the connection drops after the request", func(t *testing.T) {
		srv.ResetRecords()
		srv.InjectFault(dcstest.OpSetSSL, dcstest.Fault{Times: 3, DropConnection: true})
		_, err := client.SetSSL(ctx, "inst-1", false)
		require.Error(t, err)
		assert.Len(t, srv.RequestsFor(dcstest.OpSetSSL), 1, "the switch may have happened: never sent twice")
		srv.ClearFaults()
	})
	t.Run("an attempt's own timeout is retried", func(t *testing.T) {
		srv.ResetRecords()
		srv.InjectFault(dcstest.OpDownload, dcstest.Fault{Times: 1, Delay: 2 * time.Second})
		tr := srv.Client().Transport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		impatient, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials, dcsssl.WithEndpoint(srv.URL),
			dcsssl.WithHTTPClient(&http.Client{Transport: tr, Timeout: 200 * time.Millisecond}),
			dcsssl.WithRetry(dcsssl.RetryPolicy{BaseDelay: time.Millisecond}))
		require.NoError(t, err)
		_, err = impatient.DownloadSSLCert(ctx, "inst-1")
		require.NoError(t, err)
		assert.Len(t, srv.RequestsFor(dcstest.OpDownload), 2)
	})
	t.Run("GET retried through dropped connections", func(t *testing.T) {
		srv.ResetRecords()
		srv.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 2, DropConnection: true})
		_, err := client.GetSSLStatus(ctx, "inst-1")
		require.NoError(t, err)
	})
}

func TestCredentialRotationThroughMetadata(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	// Credentials live 3s and are refreshed in their last 2s: the burst
	// below, 1.2s in, needs exactly one refresh.
	meta := dcstest.NewMetadataServer(srv, dcstest.WithCredentialTTL(3*time.Second))
	defer meta.Close()
	client := newClient(t, srv, 100, dcsssl.WithCredentialsProvider(meta.Provider()), dcsssl.WithRefreshWindow(2*time.Second))

	_, err := client.DownloadSSLCert(context.Background(), "inst-1")
	require.NoError(t, err)
	require.Equal(t, 1, meta.SecurityKeyRequests())

	time.Sleep(1200 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := client.DownloadSSLCert(context.Background(), "inst-1")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 2, meta.SecurityKeyRequests(), "one Retrieve for the whole burst")
	issued := meta.Issued()
	require.Len(t, issued, 2)
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		assert.NotContains(t, fmt.Sprintf(verb, meta), issued[1].SecretKey, "the fake prints no secret")
	}
	last := srv.Requests()[len(srv.Requests())-1]
	assert.Contains(t, last.Header.Get("Authorization"), "Access="+issued[1].AccessKey+",")
}

// TestNoSecretInAnythingPrinted runs the whole flow, with faults, and
// searches every log record, every error and the %#v of every value the
// client returned for the secrets it handled.
func TestNoSecretInAnythingPrinted(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: false})
	srv.AddInstance("old", dcstest.InstanceConfig{Version: "5.0"})
	temp := srv.IssueTemporaryCredentials(time.Hour)

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr := srv.Client().Transport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client, err := dcsssl.NewClient(srv.ProjectID, temp, dcsssl.WithEndpoint(srv.URL),
		dcsssl.WithHTTPClient(&http.Client{Transport: tr}), dcsssl.WithLogger(logger),
		dcsssl.WithPollInterval(20*time.Millisecond), dcsssl.WithRetry(dcsssl.RetryPolicy{BaseDelay: time.Millisecond}))
	require.NoError(t, err)
	ctx := context.Background()

	srv.InjectFault(dcstest.OpDownload, dcstest.Fault{Times: 1, Status: 503})
	srv.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, DropConnection: true})
	srv.InjectFault(dcstest.OpOBSDownload, dcstest.Fault{Times: 1, Status: 500, Body: "oops"})

	var printed []any
	var errs []error
	keep := func(v any, err error) {
		printed = append(printed, v)
		if err != nil {
			errs = append(errs, err)
		}
	}
	job, err := client.SetSSL(ctx, "inst-1", true)
	keep(job, err)
	st, err := client.WaitForSSL(ctx, "inst-1", true)
	keep(st, err)
	cert, err := client.DownloadSSLCert(ctx, "inst-1")
	require.NoError(t, err)
	keep(cert, nil)
	bundle, err := client.FetchCABundle(ctx, cert) // the injected 500
	keep(bundle, err)
	bundle, err = client.FetchCABundle(ctx, cert)
	keep(bundle, err)
	tampered := *cert
	tampered.Link = strings.Replace(cert.Link, "Expires=", "Expires=1", 1)
	_, err = client.FetchCABundle(ctx, &tampered)
	keep(nil, err)
	_, err = client.DownloadSSLCert(ctx, "old")
	keep(nil, err)
	bad, _ := dcsssl.NewClient(srv.ProjectID, dcsssl.Credentials{AccessKey: temp.AccessKey, SecretKey: "wrong-" + temp.SecretKey, SecurityToken: temp.SecurityToken},
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()), dcsssl.WithLogger(logger))
	_, err = bad.DownloadSSLCert(ctx, "inst-1")
	keep(nil, err)
	printed = append(printed, temp, &temp, client, *client, dcsssl.RetryPolicy{}, srv)
	require.GreaterOrEqual(t, len(errs), 4)
	assert.NotEmpty(t, inst.CACertPEM())

	var everything strings.Builder
	everything.WriteString(logs.String())
	for _, err := range errs {
		everything.WriteString(err.Error() + "\n")
		var de *dcsssl.DCSError
		if errors.As(err, &de) {
			fmt.Fprintf(&everything, "%#v\n", de)
		}
	}
	for _, v := range printed {
		fmt.Fprintf(&everything, "%v %+v %#v %s\n", v, v, v, v)
	}
	out := everything.String()
	require.Contains(t, out, "dcsssl request", "the log was captured")
	secrets := map[string]string{
		"secret key":            temp.SecretKey,
		"the fake's secret key": srv.Credentials.SecretKey,
		"security token":        temp.SecurityToken,
		"signature header":      "SDK-HMAC-SHA256",
		"link signature":        "Signature=",
		"link access key":       "AWSAccessKeyId",
		"link signature value":  linkParam(t, cert.Link, "Signature"),
	}
	for name, s := range secrets {
		assert.NotContains(t, out, s, name)
	}
}

func linkParam(t *testing.T, link, name string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	require.NoError(t, err)
	v := req.URL.Query().Get(name)
	require.NotEmpty(t, v)
	return v
}

// TestTLSConfigIsStrict guards the configuration handed to Redis clients.
func TestTLSConfigIsStrict(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	client := newClient(t, srv, 2)
	b, err := client.DownloadCABundle(context.Background(), "inst-1")
	require.NoError(t, err)
	cfg := b.TLSConfig("redis-inst-1.dcs.example.com")
	assert.False(t, cfg.InsecureSkipVerify)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	assert.Nil(t, cfg.VerifyPeerCertificate)
}
