package dcsssl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	longest := func(n int64) int64 { return n - 1 }
	shortest := func(int64) int64 { return 0 }
	assert.Equal(t, 200*time.Millisecond, p.backoff(1, 0, longest))
	assert.Equal(t, 400*time.Millisecond, p.backoff(2, 0, longest))
	assert.Equal(t, 3200*time.Millisecond, p.backoff(5, 0, longest))
	assert.Equal(t, 5*time.Second, p.backoff(6, 0, longest), "capped at MaxDelay")
	assert.Equal(t, 5*time.Second, p.backoff(200, 0, longest), "no overflow for large attempts")
	assert.Equal(t, time.Duration(0), p.backoff(3, 0, shortest), "full jitter reaches zero")
	assert.Equal(t, 2*time.Second, p.backoff(1, 2*time.Second, longest), "Retry-After wins")
	assert.Equal(t, 5*time.Second, p.backoff(1, time.Hour, longest), "Retry-After is capped")

	assert.Equal(t, RetryPolicy{MaxAttempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}, p)
	assert.Equal(t, 1, NoRetry.withDefaults().MaxAttempts)
}

func TestRetryAfterHeader(t *testing.T) {
	now := testNow
	cases := map[string]time.Duration{
		"":            0,
		"3":           3 * time.Second,
		" 10 ":        10 * time.Second,
		"0":           0,
		"-5":          0,
		"soon":        0,
		"99999999999": 0,
		now.Add(7 * time.Second).Format(http.TimeFormat):  7 * time.Second,
		now.Add(-7 * time.Second).Format(http.TimeFormat): 0,
	}
	for h, want := range cases {
		assert.Equal(t, want, retryAfter(h, now), "Retry-After %q", h)
	}
}

// sequence answers each request with the next responder, the last one for
// every request after.
func sequence(rs ...httpmock.Responder) httpmock.Responder {
	var mu sync.Mutex
	i := 0
	return func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		cur := rs[min(i, len(rs)-1)]
		i++
		mu.Unlock()
		return cur(r)
	}
}

func TestRetryPolicyByAnswer(t *testing.T) {
	ok := jsonResponder(200, `{"link":"https://l/x","job_id":"j","enabled":true}`, "")
	connErr := httpmock.NewErrorResponder(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	eof := httpmock.NewErrorResponder(io.ErrUnexpectedEOF)
	cases := []struct {
		name      string
		op        string // "download" or "set"
		first     httpmock.Responder
		wantCalls int
	}{
		{"download 429", "download", jsonResponder(429, `{"error_code":"APIGW.0308"}`, ""), 2},
		{"download 502", "download", jsonResponder(502, "", ""), 2},
		{"download 503", "download", jsonResponder(503, "", ""), 2},
		{"download 504", "download", jsonResponder(504, "", ""), 2},
		{"download connection refused", "download", connErr, 2},
		{"download EOF", "download", eof, 2},
		{"download 401 never", "download", jsonResponder(401, `{"error_code":"APIGW.0301"}`, ""), 1},
		{"download 403 never", "download", jsonResponder(403, `{"error_code":"APIGW.0302"}`, ""), 1},
		{"download 400 never", "download", jsonResponder(400, `{"error_code":"DCS.4201"}`, ""), 1},
		{"download 404 never", "download", jsonResponder(404, `{"error_code":"APIGW.0101"}`, ""), 1},
		{"download 500 DCS never", "download", jsonResponder(500, `{"error_code":"DCS.5010","error_msg":"x"}`, ""), 1},
		{"download 500 never", "download", jsonResponder(500, ``, ""), 1},
		{"set 429", "set", jsonResponder(429, "", ""), 2},
		{"set 503 never", "set", jsonResponder(503, "", ""), 1},
		{"set 502 never", "set", jsonResponder(502, "", ""), 1},
		// The mock transport writes nothing: no request reached a server.
		{"set connection refused", "set", connErr, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds())
			var err error
			if tc.op == "set" {
				tb.mock.RegisterResponder(http.MethodPut, testEndpoint+"/v2/proj1/instances/inst-1/ssl", sequence(tc.first, ok))
				_, err = tb.c.SetSSL(context.Background(), testInstance, true)
			} else {
				tb.mock.RegisterResponder(http.MethodPost, downloadURL, sequence(tc.first, ok))
				_, err = tb.c.DownloadSSLCert(context.Background(), testInstance)
			}
			assert.Equal(t, tc.wantCalls, tb.mock.GetTotalCallCount())
			if tc.wantCalls == 2 {
				assert.NoError(t, err)
				assert.Len(t, tb.slept(), 1)
			} else {
				assert.Error(t, err)
				assert.Empty(t, tb.slept())
			}
		})
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	tb := setup(t, staticCreds())
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(503, `{"error_code":"APIGW.0201","error_msg":"busy"}`, "rid-3"))
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.Error(t, err)
	assert.Equal(t, 3, tb.mock.GetTotalCallCount())
	assert.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, tb.slept())
	assert.Equal(t, "dcsssl: download SSL cert: 503 APIGW.0201: busy (request id rid-3) (after 3 attempts)", err.Error())
	var de *DCSError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, 503, de.StatusCode)
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	tb := setup(t, staticCreds(), WithRetry(RetryPolicy{MaxAttempts: 3, MaxDelay: 2 * time.Second}))
	throttled := func(after string) httpmock.Responder {
		return func(r *http.Request) (*http.Response, error) {
			resp := httpmock.NewStringResponse(429, "")
			resp.Header.Set("Retry-After", after)
			return resp, nil
		}
	}
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, sequence(throttled("1"), throttled("30"), jsonResponder(200, `{"link":"https://l/x"}`, "")))
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, tb.slept(), "honoured, capped at MaxDelay")
}

func TestRetryNeverWaitsPastDeadline(t *testing.T) {
	tb := setup(t, staticCreds(), WithRetry(RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: time.Second}))
	tb.c.now = time.Now // the deadline is on the real clock
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(503, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tb.c.DownloadSSLCert(ctx, testInstance)
	var de *DCSError
	require.ErrorAs(t, err, &de, "the last error, at once")
	assert.Equal(t, 1, tb.mock.GetTotalCallCount())
	assert.Empty(t, tb.slept())
	assert.Less(t, time.Since(start), 400*time.Millisecond)
}

func TestRetrySignsEachAttemptAfresh(t *testing.T) {
	tb := setup(t, staticCreds())
	var mu sync.Mutex
	tick := testNow
	tb.c.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(time.Second)
		return tick
	}
	var dates, sigs []string
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		dates = append(dates, r.Header.Get("X-Sdk-Date"))
		sigs = append(sigs, r.Header.Get("Authorization"))
		if len(dates) < 3 {
			return httpmock.NewStringResponse(503, ""), nil
		}
		return jsonResponder(200, `{"link":"https://l/x"}`, "")(r)
	})
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	require.Len(t, dates, 3)
	assert.NotEqual(t, dates[0], dates[1])
	assert.NotEqual(t, dates[1], dates[2])
	assert.NotEqual(t, sigs[0], sigs[1])
}

func TestRetryStopsWhenContextEndsDuringWait(t *testing.T) {
	tb := setup(t, staticCreds())
	ctx, cancel := context.WithCancel(context.Background())
	tb.c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(503, "", ""))
	_, err := tb.c.DownloadSSLCert(ctx, testInstance)
	assert.ErrorIs(t, err, context.Canceled)
	var de *DCSError
	assert.False(t, errors.As(err, &de), "the context error is the cause, not the 503")
	assert.Contains(t, err.Error(), "503")
	assert.Equal(t, 1, tb.mock.GetTotalCallCount())
}

// hangUpAfterRequest is a server that reads a whole request and closes the
// connection without answering: the request surely reached it.
func hangUpAfterRequest(t *testing.T) (*httptest.Server, *atomic.Int32) {
	n := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

func TestSetSSLNotRetriedOnceWritten(t *testing.T) {
	srv, n := hangUpAfterRequest(t)
	c, err := NewClient(testProject, staticCreds(), WithEndpoint(srv.URL), WithRetry(RetryPolicy{BaseDelay: time.Millisecond}))
	require.NoError(t, err)

	_, err = c.SetSSL(context.Background(), testInstance, true)
	require.Error(t, err)
	assert.Equal(t, int32(1), n.Load(), "a PUT that reached the service is not sent again")

	_, err = c.GetSSLStatus(context.Background(), testInstance)
	require.Error(t, err)
	assert.Equal(t, int32(4), n.Load(), "a GET is retried")
	assert.Contains(t, err.Error(), "after 3 attempts")
}

func TestSetSSLRetriedWhenNeverWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens: connection refused
	c, err := NewClient(testProject, staticCreds(), WithEndpoint("http://"+addr), WithRetry(RetryPolicy{BaseDelay: time.Millisecond}))
	require.NoError(t, err)
	var logs bytes.Buffer
	c.logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err = c.SetSSL(context.Background(), testInstance, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 3 attempts")
	assert.Equal(t, 2, strings.Count(logs.String(), "dcsssl retrying"))
}

func TestLoggingRecordsAttemptsAndRetries(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb := setup(t, Credentials{AccessKey: testAK, SecretKey: testSK, SecurityToken: testToken}, WithLogger(logger))
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, sequence(
		jsonResponder(503, `{"error_code":"APIGW.0201","error_msg":"busy"}`, "rid-1"),
		jsonResponder(200, `{"link":"https://b.obs.example.com/x?AWSAccessKeyId=OBSAK&Expires=1&Signature=OBSSIG"}`, "rid-2")))
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)

	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, `"msg":"dcsssl request"`), out)
	assert.Equal(t, 1, strings.Count(out, `"msg":"dcsssl retrying"`), out)
	for _, want := range []string{`"operation":"download SSL cert"`, `"method":"POST"`, `"path":"/v2/proj1/instances/inst-1/ssl-certs/download"`,
		`"status":503`, `"status":200`, `"request_id":"rid-1"`, `"request_id":"rid-2"`, `"attempt":2`, `"error_code":"APIGW.0201"`, `"duration":`} {
		assert.Contains(t, out, want)
	}
	for _, secret := range []string{testSK, testToken, "SDK-HMAC-SHA256", "Signature", "OBSSIG", "OBSAK"} {
		assert.NotContains(t, out, secret)
	}

	// Without a logger nothing is logged and nothing breaks.
	tb2 := setup(t, staticCreds())
	tb2.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(200, `{"link":"https://l/x"}`, ""))
	_, err = tb2.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
}
