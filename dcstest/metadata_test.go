package dcstest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

func metadataServer(t *testing.T, s *dcstest.Server, opts ...dcstest.MetadataOption) *dcstest.MetadataServer {
	t.Helper()
	m := dcstest.NewMetadataServer(s, opts...)
	t.Cleanup(m.Close)
	return m
}

// metadataDo sends a plain request to the metadata fake.
func metadataDo(t *testing.T, method, url string, header http.Header) rawAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawAnswer{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// TestMetadataCredentialsExpire checks that issued credentials are
// accepted, with their token, until they expire by the server's clock, and
// that each request for them issues new ones.
func TestMetadataCredentialsExpire(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, _ := setup(t, dcstest.WithClock(clock.Now))
	m := metadataServer(t, s, dcstest.WithCredentialTTL(2*time.Minute))
	ctx := context.Background()

	creds, err := m.Provider().Retrieve(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, creds.SecurityToken)
	assert.Equal(t, clock.Now().Add(2*time.Minute).UTC().Truncate(time.Second), creds.Expires)

	c := newClient(t, s, creds, dcsssl.WithRefreshWindow(time.Second))
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	recs := s.Requests()
	require.Len(t, recs, 1)
	assert.Equal(t, creds.SecurityToken, recs[0].Header.Get("X-Security-Token"))
	assert.Contains(t, recs[0].Header.Get("Authorization"), "Access="+creds.AccessKey+",")

	clock.Advance(2 * time.Minute)
	_, err = c.GetSSLStatus(ctx, "inst-1")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusUnauthorized, de.StatusCode)
	assert.Equal(t, dcstest.CodeAuthFailed, de.ErrorCode)
	assert.Equal(t, dcstest.MsgTokenExpired, de.ErrorMsg)

	fresh, err := m.Provider().Retrieve(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, creds.AccessKey, fresh.AccessKey)
	assert.NotEqual(t, creds.SecurityToken, fresh.SecurityToken)
	_, err = newClient(t, s, fresh, dcsssl.WithRefreshWindow(time.Second)).GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)

	assert.Equal(t, 2, m.SecurityKeyRequests())
	assert.Equal(t, 2, m.TokenRequests())
	issued := m.Issued()
	require.Len(t, issued, 2)
	assert.Equal(t, creds, issued[0])
	assert.Equal(t, fresh, issued[1])
}

// TestMetadataRotationByClient lets the client's credential cache refresh
// from the metadata fake as the credentials near their expiry.
func TestMetadataRotationByClient(t *testing.T) {
	s, _ := setup(t)
	m := metadataServer(t, s, dcstest.WithCredentialTTL(dcsssl.DefaultRefreshWindow+time.Second))
	c, err := dcsssl.NewClient(s.ProjectID, dcsssl.Credentials{},
		dcsssl.WithCredentialsProvider(m.Provider()),
		dcsssl.WithEndpoint(s.URL), dcsssl.WithHTTPClient(s.Client()), dcsssl.WithRetry(dcsssl.NoRetry))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	require.Equal(t, 1, m.SecurityKeyRequests())

	time.Sleep(1100 * time.Millisecond) // into the refresh window
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	assert.Equal(t, 2, m.SecurityKeyRequests())
	recs := s.Requests()
	require.Len(t, recs, 2)
	assert.NotEqual(t, recs[0].Header.Get("X-Security-Token"), recs[1].Header.Get("X-Security-Token"))
}

// TestMetadataProtocol checks the wire protocol: the session token and
// its TTL header, and the answer's fields.
func TestMetadataProtocol(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, _ := setup(t, dcstest.WithClock(clock.Now))
	m := metadataServer(t, s)
	tokenURL := m.URL + "/meta-data/latest/api/token"
	keyURL := m.URL + "/openstack/latest/securitykey"

	assert.Equal(t, http.StatusBadRequest, metadataDo(t, "PUT", tokenURL, nil).Status, "no TTL header")
	assert.Equal(t, http.StatusBadRequest, metadataDo(t, "PUT", tokenURL, http.Header{"X-Metadata-Token-Ttl-Seconds": {"21601"}}).Status)
	assert.Equal(t, http.StatusMethodNotAllowed, metadataDo(t, "GET", tokenURL, nil).Status)
	assert.Equal(t, http.StatusNotFound, metadataDo(t, "GET", m.URL+"/openstack/latest/meta_data.json", nil).Status)

	a := metadataDo(t, "PUT", tokenURL, http.Header{"X-Metadata-Token-Ttl-Seconds": {"60"}})
	require.Equal(t, http.StatusOK, a.Status)
	token := string(a.Body)
	require.NotEmpty(t, token)

	assert.Equal(t, http.StatusUnauthorized, metadataDo(t, "GET", keyURL, nil).Status, "token required")
	assert.Equal(t, http.StatusUnauthorized, metadataDo(t, "GET", keyURL, http.Header{"X-Metadata-Token": {"wrong"}}).Status)
	a = metadataDo(t, "GET", keyURL, http.Header{"X-Metadata-Token": {token}})
	require.Equal(t, http.StatusOK, a.Status)
	cred, ok := a.JSON(t)["credential"].(map[string]any)
	require.True(t, ok, "%s", a.Body)
	assert.Len(t, cred, 4)
	for _, k := range []string{"access", "secret", "securitytoken"} {
		assert.NotEmpty(t, cred[k], k)
	}
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, cred["expires_at"])

	clock.Advance(time.Minute)
	assert.Equal(t, http.StatusUnauthorized, metadataDo(t, "GET", keyURL, http.Header{"X-Metadata-Token": {token}}).Status,
		"the session token expired")
	assert.Equal(t, 4, m.SecurityKeyRequests())
	assert.Len(t, m.Issued(), 1, "refused requests issue nothing")
}

// TestMetadataAlternateSpelling checks the other field names and that the
// client reads them.
func TestMetadataAlternateSpelling(t *testing.T) {
	s, _ := setup(t)
	m := metadataServer(t, s, dcstest.WithAlternateSpelling())
	a := metadataDo(t, "PUT", m.URL+"/meta-data/latest/api/token", http.Header{"X-Metadata-Token-Ttl-Seconds": {"60"}})
	require.Equal(t, http.StatusOK, a.Status)
	a = metadataDo(t, "GET", m.URL+"/openstack/latest/securitykey", http.Header{"X-Metadata-Token": {string(a.Body)}})
	require.Equal(t, http.StatusOK, a.Status)
	cred := a.JSON(t)["credential"].(map[string]any)
	for _, k := range []string{"accessKeyId", "secretAccessKey", "securityToken", "expiration"} {
		assert.NotEmpty(t, cred[k], k)
	}
	assert.NotContains(t, cred, "access")

	creds, err := m.Provider().Retrieve(context.Background())
	require.NoError(t, err)
	_, err = newClient(t, s, creds).GetSSLStatus(context.Background(), "inst-1")
	require.NoError(t, err)
}

// TestMetadataWithoutSessionTokens checks a service that grants no session
// token: the token path answers 404 or 405 and the key needs none.
func TestMetadataWithoutSessionTokens(t *testing.T) {
	for _, status := range []int{0, http.StatusMethodNotAllowed} {
		s, _ := setup(t)
		m := metadataServer(t, s, dcstest.WithoutSessionTokens(status))
		want := status
		if want == 0 {
			want = http.StatusNotFound
		}
		a := metadataDo(t, "PUT", m.URL+"/meta-data/latest/api/token", http.Header{"X-Metadata-Token-Ttl-Seconds": {"60"}})
		assert.Equal(t, want, a.Status)
		assert.Equal(t, http.StatusOK, metadataDo(t, "GET", m.URL+"/openstack/latest/securitykey", nil).Status)

		creds, err := m.Provider().Retrieve(context.Background())
		require.NoError(t, err)
		_, err = newClient(t, s, creds).GetSSLStatus(context.Background(), "inst-1")
		require.NoError(t, err)
	}
}

// TestMetadataNoAgency checks the answer of a server without an agency.
func TestMetadataNoAgency(t *testing.T) {
	s, _ := setup(t)
	m := metadataServer(t, s, dcstest.WithNoAgency())
	_, err := m.Provider().Retrieve(context.Background())
	assert.ErrorIs(t, err, dcsssl.ErrNoAgency)

	a := metadataDo(t, "PUT", m.URL+"/meta-data/latest/api/token", http.Header{"X-Metadata-Token-Ttl-Seconds": {"60"}})
	a = metadataDo(t, "GET", m.URL+"/openstack/latest/securitykey", http.Header{"X-Metadata-Token": {string(a.Body)}})
	assert.Equal(t, http.StatusUnauthorized, a.Status)
	assert.Contains(t, string(a.Body), dcstest.MsgNoAgency)
	assert.Equal(t, 2, m.SecurityKeyRequests())
	assert.Empty(t, m.Issued())

	m.SetNoAgency(false)
	_, err = m.Provider().Retrieve(context.Background())
	assert.NoError(t, err)
}

// TestIssueTemporaryCredentials checks credentials issued without the
// metadata fake.
func TestIssueTemporaryCredentials(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, _ := setup(t, dcstest.WithClock(clock.Now))
	creds := s.IssueTemporaryCredentials(time.Minute)
	c := newClient(t, s, creds)
	_, err := c.GetSSLStatus(context.Background(), "inst-1")
	require.NoError(t, err)
	clock.Advance(time.Minute)
	_, err = c.GetSSLStatus(context.Background(), "inst-1")
	assert.ErrorIs(t, err, dcsssl.ErrUnauthorized)
}
