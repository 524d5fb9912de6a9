package dcsssl

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sslURL = testEndpoint + "/v2/" + testProject + "/instances/" + testInstance + "/ssl"

func TestGetSSLStatus(t *testing.T) {
	cases := []struct {
		name string
		body string
		want SSLStatus
	}{
		{
			name: "port as string, service layout",
			body: `{"enabled":true,"ip":"192.168.0.10","port":"6379","domain_name":"redis-x.dcs.example.com","ssl_expired_at":"2027-03-04 05:06:07","ssl_validated":true}`,
			want: SSLStatus{Enabled: true, IP: "192.168.0.10", Port: 6379, DomainName: "redis-x.dcs.example.com",
				ExpiresAt: time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC), ExpiresAtRaw: "2027-03-04 05:06:07", Validated: true},
		},
		{
			name: "port as number, RFC 3339 with offset",
			body: `{"enabled":false,"port":6380,"ssl_expired_at":"2027-03-04T13:06:07+08:00"}`,
			want: SSLStatus{Port: 6380, ExpiresAt: time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC), ExpiresAtRaw: "2027-03-04T13:06:07+08:00"},
		},
		{
			name: "absent fields",
			body: `{"enabled":false}`,
			want: SSLStatus{},
		},
		{
			name: "unparseable expiry kept raw",
			body: `{"enabled":true,"port":"","ssl_expired_at":"next tuesday"}`,
			want: SSLStatus{Enabled: true, ExpiresAtRaw: "next tuesday"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds())
			tb.mock.RegisterResponder(http.MethodGet, sslURL, jsonResponder(200, tc.body, ""))
			st, err := tb.c.GetSSLStatus(context.Background(), testInstance)
			require.NoError(t, err)
			assert.Equal(t, &tc.want, st)
		})
	}
}

func TestGetSSLStatusInvalid(t *testing.T) {
	for name, body := range map[string]string{
		"no enabled":  `{"ip":"1.2.3.4"}`,
		"bad port":    `{"enabled":true,"port":"http"}`,
		"port range":  `{"enabled":true,"port":"70000"}`,
		"not json":    `<html/>`,
		"enabled str": `{"enabled":"yes"}`,
	} {
		t.Run(name, func(t *testing.T) {
			tb := setup(t, staticCreds())
			tb.mock.RegisterResponder(http.MethodGet, sslURL, jsonResponder(200, body, ""))
			st, err := tb.c.GetSSLStatus(context.Background(), testInstance)
			assert.Nil(t, st)
			assert.ErrorIs(t, err, ErrInvalidResponse)
			assert.Contains(t, err.Error(), "dcsssl: get SSL status: ")
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, s := range []string{"2027-03-04 05:06:07", "2027-03-04T05:06:07Z", "2027-03-04T05:06:07", "2027-03-04T07:06:07+02:00", " 2027-03-04 05:06:07 "} {
		got, ok := parseTimestamp(s)
		assert.True(t, ok, s)
		assert.True(t, want.Equal(got), "%s: %v", s, got)
		assert.Equal(t, time.UTC, got.Location())
	}
	for _, s := range []string{"", "2027-03-04", "04/03/2027 05:06", "1700000000", "2027-13-04 05:06:07"} {
		_, ok := parseTimestamp(s)
		assert.False(t, ok, s)
	}
}

func TestSetSSL(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		tb := setup(t, staticCreds())
		var body []byte
		var ct string
		tb.mock.RegisterResponder(http.MethodPut, sslURL, func(r *http.Request) (*http.Response, error) {
			body, _ = io.ReadAll(r.Body)
			ct = r.Header.Get("Content-Type")
			return jsonResponder(200, `{"job_id":"job-1","instance_id":"inst-1","result":"success"}`, "")(r)
		})
		job, err := tb.c.SetSSL(context.Background(), testInstance, enabled)
		require.NoError(t, err)
		assert.Equal(t, &SSLJob{JobID: "job-1", InstanceID: "inst-1", Result: "success"}, job)
		if enabled {
			assert.Equal(t, `{"enabled":true}`, string(body))
		} else {
			assert.Equal(t, `{"enabled":false}`, string(body))
		}
		assert.Equal(t, "application/json;charset=UTF-8", ct)
	}

	tb := setup(t, staticCreds())
	tb.mock.RegisterResponder(http.MethodPut, sslURL, jsonResponder(400, `{"error_code":"DCS.4201","error_msg":"Do not support SSL."}`, "r"))
	_, err := tb.c.SetSSL(context.Background(), testInstance, true)
	assert.ErrorIs(t, err, ErrSSLNotSupported)
	assert.Contains(t, err.Error(), "dcsssl: set SSL: 400 DCS.4201")
}

func TestWaitForSSL(t *testing.T) {
	off := jsonResponder(200, `{"enabled":false}`, "")
	on := jsonResponder(200, `{"enabled":true,"domain_name":"d","port":"6379"}`, "")
	restarting := jsonResponder(502, `<html>bad gateway</html>`, "")
	refused := httpmock.NewErrorResponder(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})

	t.Run("through a restart window", func(t *testing.T) {
		tb := setup(t, staticCreds(), WithPollInterval(3*time.Second), WithRetry(NoRetry))
		tb.mock.RegisterResponder(http.MethodGet, sslURL, sequence(off, restarting, refused, jsonResponder(503, "", ""), jsonResponder(429, "", ""), on))
		st, err := tb.c.WaitForSSL(context.Background(), testInstance, true)
		require.NoError(t, err)
		assert.True(t, st.Enabled)
		assert.Equal(t, "d", st.DomainName)
		assert.Equal(t, 6, tb.mock.GetTotalCallCount())
		assert.Equal(t, []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}, tb.slept())
	})
	t.Run("already there: one call, no wait", func(t *testing.T) {
		tb := setup(t, staticCreds())
		tb.mock.RegisterResponder(http.MethodGet, sslURL, off)
		st, err := tb.c.WaitForSSL(context.Background(), testInstance, false)
		require.NoError(t, err)
		assert.False(t, st.Enabled)
		assert.Equal(t, 1, tb.mock.GetTotalCallCount())
		assert.Empty(t, tb.slept())
	})
	t.Run("4xx stops at once", func(t *testing.T) {
		tb := setup(t, staticCreds(), WithRetry(NoRetry))
		tb.mock.RegisterResponder(http.MethodGet, sslURL, sequence(restarting, jsonResponder(403, `{"error_code":"APIGW.0302","error_msg":"denied"}`, "")))
		_, err := tb.c.WaitForSSL(context.Background(), testInstance, true)
		assert.ErrorIs(t, err, ErrUnauthorized)
		assert.Equal(t, 2, tb.mock.GetTotalCallCount())
	})
	t.Run("context is the deadline", func(t *testing.T) {
		tb := setup(t, staticCreds(), WithRetry(NoRetry), WithPollInterval(time.Millisecond))
		tb.c.sleep = nil // really wait
		tb.mock.RegisterResponder(http.MethodGet, sslURL, sequence(off, restarting))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := tb.c.WaitForSSL(ctx, testInstance, true)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Greater(t, tb.mock.GetTotalCallCount(), 2)
	})
	t.Run("invalid ID", func(t *testing.T) {
		tb := setup(t, staticCreds())
		_, err := tb.c.WaitForSSL(context.Background(), "../x", true)
		assert.ErrorIs(t, err, ErrInvalidInput)
		assert.Equal(t, 0, tb.mock.GetTotalCallCount())
	})
}
