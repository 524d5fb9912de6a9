package dcstest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// TestRefusedLikeTheGateway sends requests that the gateway refuses and
// checks each answer's status, code, message and request ID.
func TestRefusedLikeTheGateway(t *testing.T) {
	temp := dcsssl.Credentials{AccessKey: "TEMPAK", SecretKey: "temp-secret", SecurityToken: "the-token"}
	cases := []struct {
		name    string
		opts    []dcstest.Option
		request func(s *dcstest.Server) *http.Request
		msg     string
		refusal string
	}{{
		name: "wrong secret key",
		request: func(s *dcstest.Server) *http.Request {
			c := s.Credentials
			c.SecretKey = "not-the-secret"
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", c, time.Now())
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "signature does not match",
	}, {
		name: "unknown access key",
		request: func(s *dcstest.Server) *http.Request {
			c := s.Credentials
			c.AccessKey = "NOSUCHACCESSKEY00000"
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", c, time.Now())
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "unknown access key",
	}, {
		name: "X-Sdk-Date 16 minutes behind the server",
		request: func(s *dcstest.Server) *http.Request {
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now().Add(-16*time.Minute))
		},
		msg:     dcstest.MsgDateExpired,
		refusal: "X-Sdk-Date is more than 15 minutes",
	}, {
		name: "X-Sdk-Date 16 minutes ahead of the server",
		request: func(s *dcstest.Server) *http.Request {
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now().Add(16*time.Minute))
		},
		msg:     dcstest.MsgDateExpired,
		refusal: "X-Sdk-Date is more than 15 minutes",
	}, {
		name: "X-Project-Id not the project in the path",
		request: func(s *dcstest.Server) *http.Request {
			req, _ := http.NewRequest("GET", s.URL+sslPath(s, "inst-1"), nil)
			dcstest.SignRequest(req, nil, "0123456789abcdef0123456789abcdef", s.Credentials, time.Now())
			return req
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "does not match the project in the path",
	}, {
		name: "a project that is not the server's",
		request: func(s *dcstest.Server) *http.Request {
			other := "0123456789abcdef0123456789abcdef"
			req, _ := http.NewRequest("GET", s.URL+"/v2/"+other+"/instances/inst-1/ssl", nil)
			dcstest.SignRequest(req, nil, other, s.Credentials, time.Now())
			return req
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "is not the server's project",
	}, {
		name: "no X-Project-Id",
		request: func(s *dcstest.Server) *http.Request {
			req, _ := http.NewRequest("GET", s.URL+sslPath(s, "inst-1"), nil)
			dcstest.SignRequest(req, nil, "", s.Credentials, time.Now())
			return req
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "x-project-id is not a signed header",
	}, {
		name: "no Authorization",
		request: func(s *dcstest.Server) *http.Request {
			req, _ := http.NewRequest("GET", s.URL+sslPath(s, "inst-1"), nil)
			return req
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "Authorization header missing",
	}, {
		name: "another algorithm",
		request: func(s *dcstest.Server) *http.Request {
			req := signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now())
			req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), "SDK-HMAC-SHA256", "SDK-HMAC-SM3", 1))
			return req
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "Authorization header missing or malformed",
	}, {
		name: "temporary credentials without their token",
		request: func(s *dcstest.Server) *http.Request {
			s.AddCredentials(temp)
			c := temp
			c.SecurityToken = ""
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", c, time.Now())
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "X-Security-Token missing",
	}, {
		name: "temporary credentials with another token",
		request: func(s *dcstest.Server) *http.Request {
			s.AddCredentials(temp)
			c := temp
			c.SecurityToken = "another-token"
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", c, time.Now())
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "X-Security-Token does not match",
	}, {
		name: "permanent credentials with a token",
		request: func(s *dcstest.Server) *http.Request {
			c := s.Credentials
			c.SecurityToken = "a-token"
			return signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", c, time.Now())
		},
		msg:     dcstest.MsgSignatureFailed,
		refusal: "X-Security-Token sent with permanent credentials",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := setup(t, tc.opts...)
			a := do(t, s, tc.request(s))
			m := requireGatewayError(t, a, http.StatusUnauthorized, dcstest.CodeAuthFailed)
			assert.Equal(t, tc.msg, m["error_msg"])
			assert.Equal(t, "application/json;charset=UTF-8", a.Header.Get("Content-Type"))

			recs := s.Requests()
			require.Len(t, recs, 1)
			assert.Equal(t, http.StatusUnauthorized, recs[0].Status)
			assert.Contains(t, recs[0].Refusal, tc.refusal)
			assert.Equal(t, a.Header.Get("X-Request-Id"), recs[0].RequestID)
		})
	}
}

// TestClientSeesRefusals checks what this library's client makes of the
// refusals: a DCSError that is ErrUnauthorized and carries the request ID.
func TestClientSeesRefusals(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		opts   []dcstest.Option
		client func(t *testing.T, s *dcstest.Server) *dcsssl.Client
		msg    string
	}{{
		name: "wrong secret key",
		client: func(t *testing.T, s *dcstest.Server) *dcsssl.Client {
			return newClient(t, s, dcsssl.Credentials{AccessKey: s.Credentials.AccessKey, SecretKey: "wrong"})
		},
		msg: dcstest.MsgSignatureFailed,
	}, {
		name: "unknown access key",
		client: func(t *testing.T, s *dcstest.Server) *dcsssl.Client {
			return newClient(t, s, dcsssl.Credentials{AccessKey: "UNKNOWN", SecretKey: s.Credentials.SecretKey})
		},
		msg: dcstest.MsgSignatureFailed,
	}, {
		name: "client clock 20 minutes behind the server",
		opts: []dcstest.Option{dcstest.WithClock(func() time.Time { return time.Now().Add(20 * time.Minute) })},
		client: func(t *testing.T, s *dcstest.Server) *dcsssl.Client {
			return newClient(t, s, s.Credentials)
		},
		msg: dcstest.MsgDateExpired,
	}, {
		name: "another project",
		client: func(t *testing.T, s *dcstest.Server) *dcsssl.Client {
			c, err := dcsssl.NewClient("fedcba9876543210fedcba9876543210", s.Credentials,
				dcsssl.WithEndpoint(s.URL), dcsssl.WithHTTPClient(s.Client()), dcsssl.WithRetry(dcsssl.NoRetry))
			require.NoError(t, err)
			return c
		},
		msg: dcstest.MsgSignatureFailed,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := setup(t, tc.opts...)
			_, err := tc.client(t, s).GetSSLStatus(ctx, "inst-1")
			require.Error(t, err)
			assert.True(t, errors.Is(err, dcsssl.ErrUnauthorized), "%v", err)
			var de *dcsssl.DCSError
			require.True(t, errors.As(err, &de), "%v", err)
			assert.Equal(t, http.StatusUnauthorized, de.StatusCode)
			assert.Equal(t, dcstest.CodeAuthFailed, de.ErrorCode)
			assert.Equal(t, tc.msg, de.ErrorMsg)
			recs := s.Requests()
			require.Len(t, recs, 1, "a 401 must not be retried")
			assert.Equal(t, recs[0].RequestID, de.RequestID)
		})
	}
}

// TestTamperedRequestsRefused changes one part of a signed request after
// signing it: each change breaks the signature.
func TestTamperedRequestsRefused(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(s *dcstest.Server, req *http.Request) *http.Request
	}{
		{"path", func(s *dcstest.Server, req *http.Request) *http.Request {
			req.URL.Path = strings.Replace(req.URL.Path, "inst-1", "inst-2", 1)
			return req
		}},
		{"query added", func(s *dcstest.Server, req *http.Request) *http.Request {
			req.URL.RawQuery = "limit=1"
			return req
		}},
		{"date moved a second", func(s *dcstest.Server, req *http.Request) *http.Request {
			d, _ := time.Parse(dcstest.SDKDateLayout, req.Header.Get("X-Sdk-Date"))
			req.Header.Set("X-Sdk-Date", d.Add(time.Second).Format(dcstest.SDKDateLayout))
			return req
		}},
		{"body", func(s *dcstest.Server, req *http.Request) *http.Request {
			r2 := signedRequest(t, s, "PUT", sslPath(s, "inst-1"), `{"enabled":false}`, s.Credentials, time.Now())
			r2.Header = req.Header.Clone()
			return r2
		}},
		{"signature truncated", func(s *dcstest.Server, req *http.Request) *http.Request {
			h := req.Header.Get("Authorization")
			req.Header.Set("Authorization", h[:len(h)-1])
			return req
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := setup(t)
			s.AddInstance("inst-2", dcstest.InstanceConfig{})
			req := signedRequest(t, s, "PUT", sslPath(s, "inst-1"), `{"enabled":true}`, s.Credentials, time.Now())
			a := do(t, s, tc.tamper(s, req))
			m := requireGatewayError(t, a, http.StatusUnauthorized, dcstest.CodeAuthFailed)
			assert.Equal(t, dcstest.MsgSignatureFailed, m["error_msg"])
			assert.True(t, s.Instance("inst-1").SSLEnabled(), "a refused switch must change nothing")
		})
	}
}

// TestSignedQueryAccepted checks that the query takes part in the
// signature in the canonical order, whatever order it is sent in.
func TestSignedQueryAccepted(t *testing.T) {
	s, _ := setup(t)
	req := signedRequest(t, s, "GET", sslPath(s, "inst-1")+"?b=2&a=1&a=0&k%3D=v%2Fw+x", "", s.Credentials, time.Now())
	a := do(t, s, req)
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
}

// TestCanonicalRequest pins the canonical request to a value worked out by
// hand from the signing rules.
func TestCanonicalRequest(t *testing.T) {
	req := httptest.NewRequest("GET", "https://dcs.example.com/v2/p/instances/a%20b/ssl?b=2&a=1&a=0&k%3D=v%2F", nil)
	req.Header.Set("X-Sdk-Date", "20240102T030405Z")
	req.Header.Set("X-Project-Id", "  p  ")
	got := dcstest.CanonicalRequest(req, []string{"x-project-id", "x-sdk-date"}, nil)
	want := "GET\n" +
		"/v2/p/instances/a%20b/ssl/\n" +
		"a=0&a=1&b=2&k%3D=v%2F\n" +
		"x-project-id:p\n" +
		"x-sdk-date:20240102T030405Z\n" +
		"\n" +
		"x-project-id;x-sdk-date\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	assert.Equal(t, want, got)

	body := []byte(`{"enabled":true}`)
	put := httptest.NewRequest("PUT", "https://dcs.example.com/v2/p/instances/i/ssl/", nil)
	put.Host = "dcs.example.com:443"
	got = dcstest.CanonicalRequest(put, []string{"host"}, body)
	assert.Equal(t, "PUT\n/v2/p/instances/i/ssl/\n\nhost:dcs.example.com:443\n\nhost\n"+
		"26b3426b2593763c96d0890b4a77a0bbf66d13fc512b0c6b138a23c290f30a2a", got)
}

// TestLockout locks an access key after five failures in a row, for five
// minutes, as the gateway does.
func TestLockout(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, c := setup(t, dcstest.WithClock(clock.Now))
	ctx := context.Background()
	bad := newClient(t, s, dcsssl.Credentials{AccessKey: s.Credentials.AccessKey, SecretKey: "wrong"})
	for range 5 {
		_, err := bad.GetSSLStatus(ctx, "inst-1")
		require.ErrorIs(t, err, dcsssl.ErrUnauthorized)
	}
	_, err := c.GetSSLStatus(ctx, "inst-1")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusUnauthorized, de.StatusCode)
	assert.Equal(t, dcstest.MsgAKLocked, de.ErrorMsg)

	clock.Advance(5 * time.Minute)
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
}

// TestLockoutDisabled checks that WithLockout(0, 0) never locks and that a
// success resets the count.
func TestLockoutDisabled(t *testing.T) {
	s, c := setup(t, dcstest.WithLockout(0, 0))
	ctx := context.Background()
	bad := newClient(t, s, dcsssl.Credentials{AccessKey: s.Credentials.AccessKey, SecretKey: "wrong"})
	for range 10 {
		_, err := bad.GetSSLStatus(ctx, "inst-1")
		require.ErrorIs(t, err, dcsssl.ErrUnauthorized)
	}
	_, err := c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)

	s2, c2 := setup(t)
	bad2 := newClient(t, s2, dcsssl.Credentials{AccessKey: s2.Credentials.AccessKey, SecretKey: "wrong"})
	for range 3 {
		for range 4 {
			_, err := bad2.GetSSLStatus(ctx, "inst-1")
			require.ErrorIs(t, err, dcsssl.ErrUnauthorized)
		}
		_, err := c2.GetSSLStatus(ctx, "inst-1")
		require.NoError(t, err, "four failures and a success must not lock")
	}
}
