package dcsssl

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA is a CA that can sign server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf returns a server certificate for dnsName signed by the CA, and its
// PEM.
func (ca *testCA) leaf(t testing.TB, dnsName string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type zipEntry struct {
	name string
	data []byte
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		require.NoError(t, err)
		_, err = w.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

const testLinkBase = "https://dcs-ssl.obs.cn-north-4.example.com:443/ssl-inst-1/ssl.zip"

func testLink(expires time.Time) string {
	return fmt.Sprintf("%s?AWSAccessKeyId=OBSAK&Expires=%d&Signature=OBSSIG%%3D", testLinkBase, expires.Unix())
}

func TestLinkExpiresAt(t *testing.T) {
	cases := []struct {
		link string
		want time.Time
		ok   bool
	}{
		{testLink(testNow), testNow, true},
		{"https://h/p?Expires=0", time.Unix(0, 0).UTC(), true},
		{"https://h/p?AWSAccessKeyId=A&Signature=S", time.Time{}, false},
		{"https://h/p?Expires=soon", time.Time{}, false},
		{"https://h/p?Expires=99999999999999999999", time.Time{}, false},
		{"https://h/p?Expires=1e9", time.Time{}, false},
		{"::not a url", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := (&SSLCert{Link: tc.link}).LinkExpiresAt()
		assert.Equal(t, tc.ok, ok, tc.link)
		assert.True(t, tc.want.Equal(got), "%s: %v", tc.link, got)
	}
	_, ok := (*SSLCert)(nil).LinkExpiresAt()
	assert.False(t, ok)
}

func TestFetchCABundle(t *testing.T) {
	ca := newTestCA(t, "DCS Test CA")
	tb := setup(t, Credentials{AccessKey: testAK, SecretKey: testSK, SecurityToken: testToken})
	var got *http.Request
	tb.mock.RegisterResponder(http.MethodGet, testLinkBase, func(r *http.Request) (*http.Response, error) {
		got = r
		return httpmock.NewBytesResponse(200, makeZip(t, zipEntry{"README.txt", []byte("use ca.crt")}, zipEntry{"ssl/ca.crt", ca.pem})), nil
	})
	cert := &SSLCert{FileName: "ssl.zip", Link: testLink(testNow.Add(time.Minute))}
	b, err := tb.c.FetchCABundle(context.Background(), cert)
	require.NoError(t, err)
	assert.Equal(t, "ca.crt", b.FileName)
	assert.Equal(t, ca.pem, b.PEM)
	require.Len(t, b.Certificates, 1)
	assert.Equal(t, "DCS Test CA", b.Certificates[0].Subject.CommonName)

	require.NotNil(t, got)
	assert.Equal(t, "OBSSIG=", got.URL.Query().Get("Signature"), "the link is sent as given")
	for _, h := range []string{"Authorization", "X-Sdk-Date", "X-Security-Token", "X-Project-Id"} {
		assert.Empty(t, got.Header.Values(h), "the API's %s is not sent to the link", h)
	}
}

func TestFetchCABundleRefusals(t *testing.T) {
	tb := setup(t, staticCreds())
	cases := []struct {
		name string
		cert *SSLCert
		want string
		is   error
	}{
		{"nil", nil, "no link", ErrInvalidInput},
		{"no link", &SSLCert{}, "no link", ErrInvalidInput},
		{"http", &SSLCert{Link: "http://b.obs.example.com/x.zip?Expires=9999999999&Signature=SECRET"}, "is not an https URL", ErrInvalidInput},
		{"expired", &SSLCert{Link: testLink(testNow.Add(-90 * time.Second))}, "download link expired at 2026-01-02T03:02:35Z (1m30s ago)", ErrLinkExpired},
		{"expires now", &SSLCert{Link: testLink(testNow)}, "expired", ErrLinkExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tb.c.FetchCABundle(context.Background(), tc.cert)
			assert.Nil(t, b)
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "SECRET")
			assert.NotContains(t, err.Error(), "OBSSIG")
		})
	}
	assert.Equal(t, 0, tb.mock.GetTotalCallCount(), "refused before any request")
}

func TestFetchCABundleOBSErrors(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		header string
		want   OBSError
	}{
		{
			name: "expired by OBS", status: 403,
			body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message><RequestId>obs-rid</RequestId></Error>`,
			want: OBSError{StatusCode: 403, Code: "AccessDenied", Message: "Request has expired", RequestID: "obs-rid"},
		},
		{
			name: "tampered", status: 403, header: "hdr-rid",
			body: `<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>`,
			want: OBSError{StatusCode: 403, Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match", RequestID: "hdr-rid"},
		},
		{
			name: "plain text 404", status: 404, body: "not here",
			want: OBSError{StatusCode: 404, Message: "not here"},
		},
		{
			name: "empty 500", status: 500,
			want: OBSError{StatusCode: 500, Message: "Internal Server Error"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds())
			tb.mock.RegisterResponder(http.MethodGet, testLinkBase, func(*http.Request) (*http.Response, error) {
				resp := httpmock.NewStringResponse(tc.status, tc.body)
				if tc.header != "" {
					resp.Header.Set("X-Obs-Request-Id", tc.header)
				}
				return resp, nil
			})
			_, err := tb.c.FetchCABundle(context.Background(), &SSLCert{Link: testLink(testNow.Add(time.Minute))})
			var oe *OBSError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, tc.want, *oe)
			assert.Contains(t, err.Error(), fmt.Sprintf("dcsssl: fetch CA bundle: download link answered %d", tc.status))
			assert.NotContains(t, err.Error(), "OBSSIG")
		})
	}
	assert.ErrorIs(t, &OBSError{StatusCode: 403, Code: "AccessDenied", Message: "Request has expired"}, ErrLinkExpired)
}

// endless is a body that never ends, counting what was read of it.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	e.read += int64(len(p))
	return len(p), nil
}

func (e *endless) Close() error { return nil }

// allocatedDuring returns the bytes allocated while f ran.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestHugeAnswersStopAtTheLimit(t *testing.T) {
	const served = 100 << 20
	cases := []struct {
		name   string
		method string
		url    string
		status int
		call   func(c *Client) error
		limit  int64
	}{
		{"API success body", http.MethodPost, downloadURL, 200,
			func(c *Client) error { _, err := c.DownloadSSLCert(context.Background(), testInstance); return err }, MaxResponseBytes},
		{"API error body", http.MethodPost, downloadURL, 400,
			func(c *Client) error { _, err := c.DownloadSSLCert(context.Background(), testInstance); return err }, MaxErrorBytes},
		{"CA download", http.MethodGet, testLinkBase, 200,
			func(c *Client) error {
				_, err := c.FetchCABundle(context.Background(), &SSLCert{Link: testLink(testNow.Add(time.Minute))})
				return err
			}, MaxBundleBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds(), WithRetry(NoRetry))
			body := &endless{}
			tb.mock.RegisterResponder(tc.method, tc.url, func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: tc.status, Body: io.NopCloser(io.LimitReader(body, served)), Header: http.Header{}, Request: r}, nil
			})
			var err error
			start := time.Now()
			alloc := allocatedDuring(func() { err = tc.call(tb.c) })
			require.Error(t, err)
			if tc.status == 200 {
				assert.ErrorIs(t, err, ErrResponseTooLarge)
				assert.Contains(t, err.Error(), "larger than "+byteSize(tc.limit))
			}
			assert.Less(t, body.read, tc.limit+64<<10, "reading stopped near the limit")
			assert.Less(t, alloc, uint64(16<<20), "memory stays bounded: a few MiB of buffers, not the 100 MiB served")
			assert.Less(t, time.Since(start), 2*time.Second)
		})
	}
}

func TestParseCABundle(t *testing.T) {
	ca1 := newTestCA(t, "CA one")
	ca2 := newTestCA(t, "CA two")
	_, leafPEM := ca1.leaf(t, "redis.example.com")
	key := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("not a real key")})

	t.Run("ca.crt first, every cert entry", func(t *testing.T) {
		b, err := ParseCABundle("pkg.zip", makeZip(t,
			zipEntry{"chain/extra.pem", ca2.pem},
			zipEntry{"dir/", nil},
			zipEntry{"notes.txt", []byte("-----BEGIN CERTIFICATE-----\ngarbage")},
			zipEntry{"CA.CRT", ca1.pem},
		))
		require.NoError(t, err)
		assert.Equal(t, "CA.CRT", b.FileName)
		require.Len(t, b.Certificates, 2)
		assert.Equal(t, "CA one", b.Certificates[0].Subject.CommonName)
		assert.Equal(t, "CA two", b.Certificates[1].Subject.CommonName)
		assert.Equal(t, append(append([]byte{}, ca1.pem...), ca2.pem...), b.PEM)
	})
	t.Run("tar.gz, ca.crt first", func(t *testing.T) {
		b, err := ParseCABundle("pkg.tar.gz", makeTarGz(t,
			zipEntry{"ssl/extra.pem", ca2.pem},
			zipEntry{"ssl/README", []byte("use ca.crt")},
			zipEntry{"ssl/ca.crt", ca1.pem},
		))
		require.NoError(t, err)
		assert.Equal(t, "ca.crt", b.FileName)
		require.Len(t, b.Certificates, 2)
		assert.Equal(t, "CA one", b.Certificates[0].Subject.CommonName)
	})
	t.Run("PEM as is, keys left out", func(t *testing.T) {
		b, err := ParseCABundle("ca.pem", append(append([]byte("# bundle\n"), key...), ca2.pem...))
		require.NoError(t, err)
		assert.Equal(t, "ca.pem", b.FileName)
		assert.Equal(t, ca2.pem, b.PEM)
		assert.NotContains(t, string(b.PEM), "PRIVATE KEY")
	})

	refusals := []struct {
		name string
		data []byte
		want string
		is   error
	}{
		{"neither zip, tar.gz nor PEM", []byte("\x7fELF"), "neither a zip, a tar.gz nor PEM", ErrNoCertificate},
		{"empty", nil, "neither a zip, a tar.gz nor PEM", ErrNoCertificate},
		{"corrupt gzip", []byte("\x1f\x8b gzip?"), "not a valid gzip", ErrNoCertificate},
		{"gzip but not tar", gzipped(t, []byte("hello, not a tar archive at all")), "not a valid tar.gz", ErrNoCertificate},
		{"tar.gz without certs", makeTarGz(t, zipEntry{"README.txt", []byte("hi")}), "the tar.gz has no .crt or .pem entry", ErrNoCertificate},
		{"tar.gz with too many entries", makeTarGz(t, manyEntries(MaxBundleEntries+1)...), "more than 64 entries", ErrResponseTooLarge},
		{"zip without certs", makeZip(t, zipEntry{"README.txt", []byte("hi")}), "no .crt or .pem entry", ErrNoCertificate},
		{"corrupt zip", []byte("PK\x03\x04 broken"), "not a valid zip", ErrNoCertificate},
		{"block that does not parse", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "does not parse", ErrNoCertificate},
		{"non-CA certificate", append(append([]byte{}, ca1.pem...), leafPEM...), `certificate "CN=redis.example.com" in "x" is not a CA certificate`, ErrNoCertificate},
		{"only a key", key, "no CERTIFICATE block", ErrNoCertificate},
		{"too many entries", makeZip(t, manyEntries(MaxBundleEntries+1)...), "65 entries", ErrResponseTooLarge},
		{"too large", bytes.Repeat([]byte("-----BEGIN"), MaxBundleBytes/10+1), "larger than 1 MiB", ErrResponseTooLarge},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseCABundle("x", tc.data)
			assert.Nil(t, b)
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func makeTarGz(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return gzipped(t, buf.Bytes())
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	_, err := gz.Write(data)
	require.NoError(t, err)
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func manyEntries(n int) []zipEntry {
	es := make([]zipEntry, n)
	for i := range es {
		es[i] = zipEntry{name: fmt.Sprintf("f%d.txt", i)}
	}
	return es
}

func TestZipBombIsRefusedNotExpanded(t *testing.T) {
	ca := newTestCA(t, "CA")
	// 20 MiB of zeros deflate to about 20 KiB: well within the download limit.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("ca.crt")
	require.NoError(t, err)
	_, _ = w.Write(ca.pem)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 20; i++ {
		_, err = w.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.Less(t, buf.Len(), MaxBundleBytes)

	// A second bomb lies in its header: it claims to be small.
	lying := bytes.Clone(buf.Bytes())
	patchUncompressedSize(t, lying, 100)

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"honest header", buf.Bytes(), "dcsssl: response too large: package entries expand past 1 MiB"},
		// archive/zip stops reading past the size the header claims.
		{"lying header", lying, `zip entry "ca.crt": zip: not a valid zip file`},
		{"tar.gz", makeTarGz(t, zipEntry{"ca.crt", append(bytes.Clone(ca.pem), make([]byte, 20<<20)...)}), "package entries expand past 1 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b *CABundle
			var err error
			alloc := allocatedDuring(func() { b, err = ParseCABundle("bomb.zip", tc.data) })
			assert.Nil(t, b)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Less(t, alloc, uint64(16<<20), "not expanded")
		})
	}
}

// patchUncompressedSize rewrites the uncompressed size of the first entry,
// in its local header and its central directory record.
func patchUncompressedSize(t *testing.T, z []byte, size uint32) {
	t.Helper()
	le := func(off int) {
		z[off], z[off+1], z[off+2], z[off+3] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
	}
	central := bytes.Index(z, []byte("PK\x01\x02"))
	require.Greater(t, central, 0)
	le(central + 24)
	// With a data descriptor the local header's sizes are zero; the
	// descriptor follows the data and is what the reader checks.
	if dd := bytes.LastIndex(z[:central], []byte("PK\x07\x08")); dd > 0 {
		le(dd + 12)
	}
}

func TestTLSConfigVerifiesAgainstExactlyTheBundle(t *testing.T) {
	ca := newTestCA(t, "instance CA")
	other := newTestCA(t, "other CA")
	serverCert, _ := ca.leaf(t, "redis-1.dcs.example.com")

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}
	}()
	dial := func(cfg *tls.Config) error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}

	b, err := ParseCABundle("ca.crt", ca.pem)
	require.NoError(t, err)
	cfg := b.TLSConfig("redis-1.dcs.example.com")
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	assert.Equal(t, "redis-1.dcs.example.com", cfg.ServerName)
	assert.False(t, cfg.InsecureSkipVerify)
	assert.NoError(t, dial(cfg))

	var uerr x509.UnknownAuthorityError
	wrong, err := ParseCABundle("ca.crt", other.pem)
	require.NoError(t, err)
	assert.ErrorAs(t, dial(wrong.TLSConfig("redis-1.dcs.example.com")), &uerr, "another CA is not trusted")

	var herr x509.HostnameError
	assert.ErrorAs(t, dial(b.TLSConfig("redis-2.dcs.example.com")), &herr, "the name is checked")
}

func TestDownloadCABundle(t *testing.T) {
	ca := newTestCA(t, "CA")
	tb := setup(t, staticCreds())
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(200,
		`{"file_name":"ssl.zip","link":"`+testLink(testNow.Add(5*time.Minute))+`","bucket_name":"b"}`, ""))
	tb.mock.RegisterResponder(http.MethodGet, testLinkBase, httpmock.NewBytesResponder(200, makeZip(t, zipEntry{"ca.crt", ca.pem})))
	b, err := tb.c.DownloadCABundle(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, ca.pem, b.PEM)
	assert.True(t, strings.HasPrefix(string(b.PEM), "-----BEGIN CERTIFICATE-----"))

	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(400, `{"error_code":"DCS.4201","error_msg":"Do not support SSL."}`, ""))
	_, err = tb.c.DownloadCABundle(context.Background(), testInstance)
	assert.ErrorIs(t, err, ErrSSLNotSupported)
}
