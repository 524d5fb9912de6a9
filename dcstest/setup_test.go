package dcstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// setup starts a server with one SSL-enabled 6.0 instance "inst-1" and
// returns it with a client of this library that does not retry.
func setup(t *testing.T, opts ...dcstest.Option) (*dcstest.Server, *dcsssl.Client) {
	t.Helper()
	s := dcstest.NewServer(opts...)
	t.Cleanup(s.Close)
	s.AddInstance("inst-1", dcstest.InstanceConfig{Version: "6.0", SSLEnabled: true})
	return s, newClient(t, s, s.Credentials)
}

// newClient returns a client of s signing with creds, without retries.
func newClient(t *testing.T, s *dcstest.Server, creds dcsssl.Credentials, opts ...dcsssl.Option) *dcsssl.Client {
	t.Helper()
	all := append([]dcsssl.Option{
		dcsssl.WithEndpoint(s.URL),
		dcsssl.WithHTTPClient(s.Client()),
		dcsssl.WithRetry(dcsssl.NoRetry),
	}, opts...)
	c, err := dcsssl.NewClient(s.ProjectID, creds, all...)
	require.NoError(t, err)
	return c
}

// rawAnswer is an answer read whole.
type rawAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (a rawAnswer) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(a.Body, &m), "body %q", a.Body)
	return m
}

// do sends a request to s with s's client and reads the whole answer.
func do(t *testing.T, s *dcstest.Server, req *http.Request) rawAnswer {
	t.Helper()
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawAnswer{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// signedRequest builds a request to s signed with creds at t for the
// project in the path, as the official SDK signs.
func signedRequest(t *testing.T, s *dcstest.Server, method, path, body string, creds dcsssl.Credentials, at time.Time) *http.Request {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, rb)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	dcstest.SignRequest(req, []byte(body), s.ProjectID, creds, at)
	return req
}

// sslPath returns the path of the SSL status API of an instance.
func sslPath(s *dcstest.Server, id string) string {
	return "/v2/" + s.ProjectID + "/instances/" + id + "/ssl"
}

// requireGatewayError checks a gateway error answer: status, code, and the
// request ID both in the header and the body.
func requireGatewayError(t *testing.T, a rawAnswer, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, a.Status, "body %s", a.Body)
	m := a.JSON(t)
	require.Equal(t, code, m["error_code"])
	rid := a.Header.Get("X-Request-Id")
	require.Regexp(t, `^[0-9a-f]{32}$`, rid)
	require.Equal(t, rid, m["request_id"])
	require.NotEmpty(t, m["error_msg"])
	return m
}

// requireDCSError checks a DCS error answer: status, code, message and
// error_ext_msg present and null.
func requireDCSError(t *testing.T, a rawAnswer, status int, code, msg string) {
	t.Helper()
	require.Equal(t, status, a.Status, "body %s", a.Body)
	m := a.JSON(t)
	require.Equal(t, code, m["error_code"])
	require.Equal(t, msg, m["error_msg"])
	ext, ok := m["error_ext_msg"]
	require.True(t, ok, "error_ext_msg missing from %s", a.Body)
	require.Nil(t, ext)
	require.Regexp(t, `^[0-9a-f]{32}$`, a.Header.Get("X-Request-Id"))
}
