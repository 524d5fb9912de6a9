package dcstest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// TestClientAccepted checks that requests signed by this library's client
// pass verification and get the service's answers.
func TestClientAccepted(t *testing.T) {
	s, c := setup(t)
	inst := s.AddInstance("inst-7", dcstest.InstanceConfig{Version: "7.0", SSLEnabled: true, Port: 6380, IP: "192.168.0.10"})
	ctx := context.Background()

	cert, err := c.DownloadSSLCert(ctx, "inst-7")
	require.NoError(t, err)
	assert.Equal(t, "ssl-inst-7.zip", cert.FileName)
	assert.Equal(t, dcstest.DefaultBucket, cert.BucketName)
	require.True(t, strings.HasPrefix(cert.Link, s.URL+"/obs/dcs-ssl-certs/ssl-inst-7/ssl-inst-7.zip?"), cert.Link)
	exp, ok := cert.LinkExpiresAt()
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(dcstest.DefaultLinkTTL), exp, 2*time.Second)

	bundle, err := c.FetchCABundle(ctx, cert)
	require.NoError(t, err)
	assert.Equal(t, inst.CACertPEM(), bundle.PEM)

	st, err := c.GetSSLStatus(ctx, "inst-7")
	require.NoError(t, err)
	assert.True(t, st.Enabled)
	assert.True(t, st.Validated)
	assert.Equal(t, "192.168.0.10", st.IP)
	assert.Equal(t, 6380, st.Port)
	assert.Equal(t, "redis-inst-7.dcs.example.com", st.DomainName)
	assert.Equal(t, inst.ServerCertificate().Leaf.NotAfter.UTC().Truncate(time.Second), st.ExpiresAt)
	assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, st.ExpiresAtRaw)

	job, err := c.SetSSL(ctx, "inst-7", false)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, job.JobID)
	assert.Equal(t, "inst-7", job.InstanceID)
	assert.Equal(t, "success", job.Result)
	assert.False(t, inst.SSLEnabled())

	recs := s.Requests()
	require.Len(t, recs, 4)
	wantOps := []dcstest.Operation{dcstest.OpDownload, dcstest.OpOBSDownload, dcstest.OpGetSSL, dcstest.OpSetSSL}
	for i, r := range recs {
		assert.Equal(t, i+1, r.Seq)
		assert.Equal(t, wantOps[i], r.Op)
		assert.Equal(t, "inst-7", r.InstanceID)
		assert.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Refusal)
		assert.True(t, r.Done)
		assert.Regexp(t, `^[0-9a-f]{32}$`, r.RequestID)
	}
	assert.Equal(t, "POST", recs[0].Method)
	assert.True(t, recs[0].HasAuthorization())
	assert.False(t, recs[1].HasAuthorization(), "the link must be fetched without the API's signature")
	assert.Empty(t, recs[1].Header.Get("X-Security-Token"))
	assert.Equal(t, `{"enabled":false}`, string(recs[3].Body))
	assert.Equal(t, s.ProjectID, recs[3].Header.Get("X-Project-Id"))
}

// TestRawAnswers checks the answers byte for byte where the client would
// hide details: the port is a string, error_ext_msg is null.
func TestRawAnswers(t *testing.T) {
	s, _ := setup(t)
	a := do(t, s, signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now()))
	require.Equal(t, http.StatusOK, a.Status)
	m := a.JSON(t)
	assert.Equal(t, "6379", m["port"])
	assert.Equal(t, "127.0.0.1", m["ip"])
	assert.Equal(t, true, m["enabled"])
	assert.Equal(t, true, m["ssl_validated"])
	assert.Regexp(t, `^[0-9a-f]{32}$`, a.Header.Get("X-Request-Id"))

	a = do(t, s, signedRequest(t, s, "POST", "/v2/"+s.ProjectID+"/instances/inst-1/ssl-certs/download", "", s.Credentials, time.Now()))
	require.Equal(t, http.StatusOK, a.Status)
	m = a.JSON(t)
	assert.Len(t, m, 3)
	for _, k := range []string{"bucket_name", "file_name", "link"} {
		assert.IsType(t, "", m[k], k)
	}
}

// TestDCSErrors checks the DCS errors: an instance without SSL support, an
// unknown instance, a malformed switch body.
func TestDCSErrors(t *testing.T) {
	s, c := setup(t)
	s.AddInstance("old", dcstest.InstanceConfig{Version: "5.0", SSLEnabled: true})
	ctx := context.Background()
	now := time.Now()

	for _, req := range []*http.Request{
		signedRequest(t, s, "POST", "/v2/"+s.ProjectID+"/instances/old/ssl-certs/download", "", s.Credentials, now),
		signedRequest(t, s, "GET", sslPath(s, "old"), "", s.Credentials, now),
		signedRequest(t, s, "PUT", sslPath(s, "old"), `{"enabled":true}`, s.Credentials, now),
	} {
		requireDCSError(t, do(t, s, req), http.StatusBadRequest, dcstest.CodeSSLNotSupported, "Do not support SSL.")
	}
	_, err := c.DownloadSSLCert(ctx, "old")
	assert.ErrorIs(t, err, dcsssl.ErrSSLNotSupported)
	_, err = c.GetSSLStatus(ctx, "old")
	assert.ErrorIs(t, err, dcsssl.ErrSSLNotSupported)
	_, err = c.SetSSL(ctx, "old", false)
	assert.ErrorIs(t, err, dcsssl.ErrSSLNotSupported)

	requireDCSError(t, do(t, s, signedRequest(t, s, "GET", sslPath(s, "nope"), "", s.Credentials, now)),
		http.StatusNotFound, dcstest.CodeInstanceNotFound, "The instance does not exist.")
	_, err = c.GetSSLStatus(ctx, "nope")
	assert.ErrorIs(t, err, dcsssl.ErrNotFound)
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de))
	assert.Equal(t, dcstest.CodeInstanceNotFound, de.ErrorCode)

	for _, body := range []string{`{"enabled":`, `{}`, `{"enabled":"yes"}`, `[]`, ``} {
		a := do(t, s, signedRequest(t, s, "PUT", sslPath(s, "inst-1"), body, s.Credentials, now))
		requireDCSError(t, a, http.StatusBadRequest, dcstest.CodeInvalidBody,
			"The message body contains invalid characters or is not in JSON format.")
	}
	assert.True(t, s.Instance("inst-1").SSLEnabled())
}

// TestUnknownAPI checks the gateway's 404 for paths and methods nothing is
// served at; it answers before verification.
func TestUnknownAPI(t *testing.T) {
	s, _ := setup(t)
	now := time.Now()
	for _, req := range []*http.Request{
		signedRequest(t, s, "GET", "/v2/"+s.ProjectID+"/instances/inst-1/ssl-certs/download", "", s.Credentials, now),
		signedRequest(t, s, "DELETE", sslPath(s, "inst-1"), "", s.Credentials, now),
		signedRequest(t, s, "GET", sslPath(s, "inst-1")+"/extra", "", s.Credentials, now),
		signedRequest(t, s, "GET", "/v1/"+s.ProjectID+"/instances/inst-1/ssl", "", s.Credentials, now),
		signedRequest(t, s, "GET", "/", "", s.Credentials, now),
		signedRequest(t, s, "GET", "/obs/other-bucket/x", "", s.Credentials, now),
	} {
		a := do(t, s, req)
		m := requireGatewayError(t, a, http.StatusNotFound, dcstest.CodeAPINotFound)
		assert.Equal(t, "The API does not exist or has not been published in the environment", m["error_msg"])
	}
	unsigned, err := http.NewRequest("PATCH", s.URL+sslPath(s, "inst-1"), nil)
	require.NoError(t, err)
	requireGatewayError(t, do(t, s, unsigned), http.StatusNotFound, dcstest.CodeAPINotFound)
	for _, r := range s.Requests() {
		assert.Equal(t, dcstest.Operation(""), r.Op)
		assert.Equal(t, http.StatusNotFound, r.Status)
	}
}

// TestRequestTooLarge checks the gateway's 413 for a body past
// MaxRequestBody.
func TestRequestTooLarge(t *testing.T) {
	s, _ := setup(t)
	body := `{"enabled":true,"pad":"` + strings.Repeat("x", dcstest.MaxRequestBody) + `"}`
	a := do(t, s, signedRequest(t, s, "PUT", sslPath(s, "inst-1"), body, s.Credentials, time.Now()))
	requireGatewayError(t, a, http.StatusRequestEntityTooLarge, "APIGW.0201")
}

// TestSSLSwitchRestarts checks the restart window of an SSL switch: the
// status query fails with a 5xx and the old state holds until the delay has
// passed, then the new state shows.
func TestSSLSwitchRestarts(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, c := setup(t, dcstest.WithClock(clock.Now), dcstest.WithRestartDelay(30*time.Second))
	inst := s.AddInstance("inst-off", dcstest.InstanceConfig{})
	ctx := context.Background()

	st, err := c.GetSSLStatus(ctx, "inst-off")
	require.NoError(t, err)
	require.False(t, st.Enabled)
	require.False(t, st.Validated)

	job, err := c.SetSSL(ctx, "inst-off", true)
	require.NoError(t, err)
	require.NotEmpty(t, job.JobID)
	assert.True(t, inst.Restarting())
	assert.False(t, inst.SSLEnabled(), "old state during the restart")

	clock.Advance(29 * time.Second)
	_, err = c.GetSSLStatus(ctx, "inst-off")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusBadGateway, de.StatusCode)
	assert.Equal(t, "APIGW.0202", de.ErrorCode)
	assert.True(t, de.Temporary())
	a := do(t, s, signedRequest(t, s, "GET", sslPath(s, "inst-off"), "", s.Credentials, time.Now()))
	requireGatewayError(t, a, http.StatusBadGateway, "APIGW.0202")
	assert.False(t, inst.SSLEnabled())

	clock.Advance(time.Second)
	st, err = c.GetSSLStatus(ctx, "inst-off")
	require.NoError(t, err)
	assert.True(t, st.Enabled)
	assert.True(t, st.Validated)
	assert.True(t, inst.SSLEnabled())
	assert.False(t, inst.Restarting())
}

// TestRestartStatus checks WithRestartStatus: 504 answers APIGW.0203, 0
// answers the old state.
func TestRestartStatus(t *testing.T) {
	ctx := context.Background()
	clock := dcstest.NewManualClock(time.Now())
	s, c := setup(t, dcstest.WithClock(clock.Now), dcstest.WithRestartDelay(time.Minute),
		dcstest.WithRestartStatus(http.StatusGatewayTimeout))
	_, err := c.SetSSL(ctx, "inst-1", false)
	require.NoError(t, err)
	a := do(t, s, signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now()))
	m := requireGatewayError(t, a, http.StatusGatewayTimeout, "APIGW.0203")
	assert.Equal(t, "Backend timeout", m["error_msg"])

	s2, c2 := setup(t, dcstest.WithClock(clock.Now), dcstest.WithRestartDelay(time.Minute), dcstest.WithRestartStatus(0))
	_, err = c2.SetSSL(ctx, "inst-1", false)
	require.NoError(t, err)
	st, err := c2.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	assert.True(t, st.Enabled, "old state during the restart")
	clock.Advance(time.Minute)
	st, err = c2.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	assert.False(t, st.Enabled)
	assert.False(t, s2.Instance("inst-1").SSLEnabled())
}

// TestWaitForSSLThroughRestart runs the client's wait against a real-time
// restart: it sees 502s, then the new state.
func TestWaitForSSLThroughRestart(t *testing.T) {
	s, _ := setup(t, dcstest.WithRestartDelay(150*time.Millisecond))
	c := newClient(t, s, s.Credentials, dcsssl.WithPollInterval(20*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.SetSSL(ctx, "inst-1", false)
	require.NoError(t, err)
	st, err := c.WaitForSSL(ctx, "inst-1", false)
	require.NoError(t, err)
	assert.False(t, st.Enabled)

	var failed, ok int
	for _, r := range s.RequestsFor(dcstest.OpGetSSL) {
		switch r.Status {
		case http.StatusBadGateway:
			failed++
		case http.StatusOK:
			ok++
		}
	}
	assert.Greater(t, failed, 0, "the wait must have seen the restart")
	assert.Equal(t, 1, ok)
}
