package dcsssl

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metadataServer is an ECS metadata service as tests need it.
type metadataServer struct {
	mu          sync.Mutex
	tokenStatus int    // the answer to PUT token: 200 grants one
	keyStatus   int    // the answer to GET securitykey
	keyBody     string // its body
	tokenTTLs   []string
	keyTokens   []string
}

func (m *metadataServer) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case r.Method == http.MethodPut && r.URL.Path == metadataTokenPath:
			m.tokenTTLs = append(m.tokenTTLs, r.Header.Get(metadataTokenTTL))
			w.WriteHeader(m.tokenStatus)
			if m.tokenStatus == http.StatusOK {
				_, _ = io.WriteString(w, "session-token-1\n")
			}
		case r.Method == http.MethodGet && r.URL.Path == metadataKeyPath:
			m.keyTokens = append(m.keyTokens, r.Header.Get(metadataTokenHdr))
			w.WriteHeader(m.keyStatus)
			_, _ = io.WriteString(w, m.keyBody)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const (
	metaSK    = "META-SECRET-KEY"
	metaToken = "META-SECURITY-TOKEN"
)

func TestMetadataCredentials(t *testing.T) {
	canonical := `{"credential":{"access":"META-AK","secret":"` + metaSK + `","securitytoken":"` + metaToken + `","expires_at":"2026-01-02T09:00:00Z"}}`
	alternate := `{"credential":{"accessKeyId":"META-AK","secretAccessKey":"` + metaSK + `","securityToken":"` + metaToken + `","expiration":"2026-01-02T09:00:00.000000Z"}}`
	want := Credentials{AccessKey: "META-AK", SecretKey: metaSK, SecurityToken: metaToken, Expires: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)}
	cases := []struct {
		name        string
		tokenStatus int
		body        string
		wantToken   string
	}{
		{"with token", 200, canonical, "session-token-1"},
		{"token API absent (404)", 404, canonical, ""},
		{"token API refused (405)", 405, canonical, ""},
		{"other spelling", 200, alternate, "session-token-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &metadataServer{tokenStatus: tc.tokenStatus, keyStatus: 200, keyBody: tc.body}
			p := MetadataCredentials(WithMetadataEndpoint(m.start(t) + "/"))
			got, err := p.Retrieve(context.Background())
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.Equal(t, []string{metadataTokenTTLValue}, m.tokenTTLs)
			assert.Equal(t, []string{tc.wantToken}, m.keyTokens)
		})
	}
}

func TestMetadataCredentialsErrors(t *testing.T) {
	cases := []struct {
		name        string
		tokenStatus int
		keyStatus   int
		body        string
		want        string
		is          error
	}{
		{"no agency", 200, 401, `{"error":"Please configure Cloud Service Agency first"}`, "bind an agency", ErrNoAgency},
		{"token error", 500, 200, ``, "PUT /meta-data/latest/api/token: 500", nil},
		{"key error", 200, 403, `forbidden`, "GET /openstack/latest/securitykey: 403 forbidden", nil},
		{"not JSON", 200, 200, `<html>`, "answer is not JSON", nil},
		{"missing token", 200, 200, `{"credential":{"access":"a","secret":"` + metaSK + `"}}`, "lacks access, secret or securitytoken", nil},
		{"bad expiry", 200, 200, `{"credential":{"access":"a","secret":"` + metaSK + `","securitytoken":"` + metaToken + `","expires_at":"tomorrow"}}`, `expires_at "tomorrow" is not a time`, nil},
		{"huge answer", 200, 200, strings.Repeat("x", 10*metadataMaxBytes), "larger than 64 KiB", ErrResponseTooLarge},
		{"redirect not followed", 200, 302, ``, "302", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &metadataServer{tokenStatus: tc.tokenStatus, keyStatus: tc.keyStatus, keyBody: tc.body}
			_, err := MetadataCredentials(WithMetadataEndpoint(m.start(t))).Retrieve(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			for _, secret := range []string{metaSK, metaToken, "session-token-1"} {
				assert.NotContains(t, err.Error(), secret)
			}
		})
	}
}

func TestMetadataCredentialsUnreachableIsQuick(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := MetadataCredentials(WithMetadataEndpoint(url)).Retrieve(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dcsssl: metadata credentials: PUT /meta-data/latest/api/token")
	assert.Less(t, time.Since(start), metadataTimeout)
}
