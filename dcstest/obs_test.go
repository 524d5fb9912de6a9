package dcstest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

type obsErrorBody struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
}

// get fetches a link with the server's client and no other header.
func get(t *testing.T, s *dcstest.Server, link string) rawAnswer {
	t.Helper()
	req, err := http.NewRequest("GET", link, nil)
	require.NoError(t, err)
	return do(t, s, req)
}

// requireOBSError checks an OBS XML error answer.
func requireOBSError(t *testing.T, a rawAnswer, status int, code string) obsErrorBody {
	t.Helper()
	require.Equal(t, status, a.Status, "body %s", a.Body)
	assert.Equal(t, "application/xml", a.Header.Get("Content-Type"))
	require.True(t, bytes.HasPrefix(a.Body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error>")), "%s", a.Body)
	var e obsErrorBody
	require.NoError(t, xml.Unmarshal(a.Body, &e))
	assert.Equal(t, code, e.Code)
	rid := a.Header.Get("X-Request-Id")
	assert.Regexp(t, `^[0-9a-f]{32}$`, rid)
	assert.Equal(t, rid, e.RequestID)
	assert.Equal(t, rid, a.Header.Get("X-Obs-Request-Id"))
	return e
}

func downloadLink(t *testing.T, c *dcsssl.Client, id string) string {
	t.Helper()
	cert, err := c.DownloadSSLCert(context.Background(), id)
	require.NoError(t, err)
	return cert.Link
}

// TestTamperedLinkRefused changes one part of a download link: each change
// is refused as OBS refuses it.
func TestTamperedLinkRefused(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(u *url.URL)
		code   string
	}{
		{"signature", func(u *url.URL) {
			q := u.Query()
			sig := q.Get("Signature")
			q.Set("Signature", "A"+sig[1:])
			if sig[0] == 'A' {
				q.Set("Signature", "B"+sig[1:])
			}
			u.RawQuery = q.Encode()
		}, dcstest.OBSSignatureDoesNotMatch},
		{"expires extended", func(u *url.URL) {
			q := u.Query()
			q.Set("Expires", q.Get("Expires")+"0")
			u.RawQuery = q.Encode()
		}, dcstest.OBSSignatureDoesNotMatch},
		{"another instance's object", func(u *url.URL) {
			u.Path = strings.ReplaceAll(u.Path, "inst-1", "inst-2")
		}, dcstest.OBSSignatureDoesNotMatch},
		{"parameter added", func(u *url.URL) {
			u.RawQuery += "&response-content-type=text%2Fhtml"
		}, dcstest.OBSSignatureDoesNotMatch},
		{"access key", func(u *url.URL) {
			q := u.Query()
			q.Set("AWSAccessKeyId", "SOMEONEELSE")
			u.RawQuery = q.Encode()
		}, dcstest.OBSInvalidAccessKeyID},
		{"query dropped", func(u *url.URL) { u.RawQuery = "" }, dcstest.OBSAccessDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := setup(t)
			s.AddInstance("inst-2", dcstest.InstanceConfig{SSLEnabled: true})
			u, err := url.Parse(downloadLink(t, c, "inst-1"))
			require.NoError(t, err)
			tc.tamper(u)
			requireOBSError(t, get(t, s, u.String()), http.StatusForbidden, tc.code)

			_, err = c.FetchCABundle(context.Background(), &dcsssl.SSLCert{FileName: "ssl-inst-1.zip", Link: u.String()})
			var oe *dcsssl.OBSError
			require.True(t, errors.As(err, &oe), "%v", err)
			assert.Equal(t, http.StatusForbidden, oe.StatusCode)
			assert.Equal(t, tc.code, oe.Code)
			assert.False(t, errors.Is(err, dcsssl.ErrLinkExpired), "a tampered link is not an expired one")

			recs := s.RequestsFor(dcstest.OpOBSDownload)
			require.Len(t, recs, 2)
			assert.Contains(t, recs[0].Refusal, tc.code)
			assert.Equal(t, http.StatusForbidden, recs[0].Status)
		})
	}
}

// TestExpiredLinkRefused moves the server's clock past a link's expiry.
func TestExpiredLinkRefused(t *testing.T) {
	clock := dcstest.NewManualClock(time.Now())
	s, c := setup(t, dcstest.WithClock(clock.Now), dcstest.WithLinkTTL(2*time.Minute))
	cert, err := c.DownloadSSLCert(context.Background(), "inst-1")
	require.NoError(t, err)
	exp, ok := cert.LinkExpiresAt()
	require.True(t, ok)
	assert.Equal(t, clock.Now().Add(2*time.Minute).Unix(), exp.Unix())

	clock.Set(exp.Add(-time.Second))
	require.Equal(t, http.StatusOK, get(t, s, cert.Link).Status)

	clock.Set(exp)
	e := requireOBSError(t, get(t, s, cert.Link), http.StatusForbidden, dcstest.OBSAccessDenied)
	assert.Equal(t, "Request has expired", e.Message)

	// The client's own clock says the link is still valid: only the
	// bucket's answer tells it otherwise.
	_, err = c.FetchCABundle(context.Background(), cert)
	assert.ErrorIs(t, err, dcsssl.ErrLinkExpired)
	var oe *dcsssl.OBSError
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Equal(t, dcstest.OBSAccessDenied, oe.Code)
}

// TestLinkServesPackage checks the package: a zip with ca.crt holding the
// instance's CA, served whether or not an Authorization header came.
func TestLinkServesPackage(t *testing.T) {
	s, c := setup(t)
	inst := s.Instance("inst-1")
	link := downloadLink(t, c, "inst-1")

	req, err := http.NewRequest("GET", link, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "SDK-HMAC-SHA256 Access=X, SignedHeaders=x-sdk-date, Signature=00")
	a := do(t, s, req)
	require.Equal(t, http.StatusOK, a.Status)
	assert.Equal(t, "application/zip", a.Header.Get("Content-Type"))
	assert.Regexp(t, `^[0-9a-f]{32}$`, a.Header.Get("X-Request-Id"))
	assert.Equal(t, inst.Package(), a.Body)

	zr, err := zip.NewReader(bytes.NewReader(a.Body), int64(len(a.Body)))
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		files[f.Name] = b
	}
	assert.Equal(t, inst.CACertPEM(), files["ca.crt"])
	assert.Contains(t, string(files["README.txt"]), "ca.crt")

	recs := s.RequestsFor(dcstest.OpOBSDownload)
	require.Len(t, recs, 1)
	assert.True(t, recs[0].HasAuthorization())

	// The link stays valid until it expires: fetching it twice works.
	assert.Equal(t, http.StatusOK, get(t, s, link).Status)

	s.RemoveInstance("inst-1")
	requireOBSError(t, get(t, s, link), http.StatusNotFound, dcstest.OBSNoSuchKey)
}

// TestPackageOverrides checks SetPackage and SetCABundle, for tests of
// hostile or wrong packages.
func TestPackageOverrides(t *testing.T) {
	s, c := setup(t)
	inst := s.Instance("inst-1")
	other := s.AddInstance("inst-2", dcstest.InstanceConfig{})
	ctx := context.Background()

	inst.SetPackage([]byte("<html>not a zip</html>"))
	a := get(t, s, downloadLink(t, c, "inst-1"))
	require.Equal(t, http.StatusOK, a.Status)
	assert.Equal(t, "<html>not a zip</html>", string(a.Body))
	_, err := c.DownloadCABundle(ctx, "inst-1")
	assert.ErrorIs(t, err, dcsssl.ErrNoCertificate)

	inst.SetPackage(nil)
	b, err := c.DownloadCABundle(ctx, "inst-1")
	require.NoError(t, err)
	assert.Equal(t, inst.CACertPEM(), b.PEM)

	inst.SetCABundle(other.CACertPEM())
	b, err = c.DownloadCABundle(ctx, "inst-1")
	require.NoError(t, err)
	assert.Equal(t, other.CACertPEM(), b.PEM)
	assert.Error(t, handshake(t, inst.ServerCertificate(), b.TLSConfig(inst.DomainName())),
		"another CA must not verify the instance")

	inst.SetCABundle(nil)
	b, err = c.DownloadCABundle(ctx, "inst-1")
	require.NoError(t, err)
	assert.NoError(t, handshake(t, inst.ServerCertificate(), b.TLSConfig(inst.DomainName())))
}

// TestInstanceCertificates checks the CA and the server certificate: a
// real TLS client that trusts only the downloaded bundle accepts the
// instance by its domain name and refuses other names.
func TestInstanceCertificates(t *testing.T) {
	s, c := setup(t)
	inst := s.AddInstance("Inst-9", dcstest.InstanceConfig{Version: "7.0", SSLEnabled: true})
	assert.Equal(t, "Inst-9", inst.ID())
	assert.Equal(t, "redis-inst-9.dcs.example.com", inst.DomainName())
	named := s.AddInstance("named", dcstest.InstanceConfig{DomainName: "cache.internal.test"})
	assert.Equal(t, "cache.internal.test", named.ServerCertificate().Leaf.DNSNames[0])

	ca := inst.CACert()
	assert.True(t, ca.IsCA)
	assert.True(t, ca.BasicConstraintsValid)
	assert.Equal(t, elliptic.P256(), ca.PublicKey.(*ecdsa.PublicKey).Curve)

	cert := inst.ServerCertificate()
	require.NotNil(t, cert.Leaf)
	assert.Equal(t, []string{inst.DomainName()}, cert.Leaf.DNSNames)
	assert.False(t, cert.Leaf.IsCA)
	_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: inst.DomainName(), Roots: inst.CertPool()})
	assert.NoError(t, err)
	_, err = cert.Leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: inst.CertPool()})
	assert.NoError(t, err)
	_, err = cert.Leaf.Verify(x509.VerifyOptions{DNSName: inst.DomainName(), Roots: named.CertPool()})
	assert.Error(t, err, "each instance has its own CA")

	pair, err := tls.X509KeyPair(inst.ServerCertPEM(), inst.ServerKeyPEM())
	require.NoError(t, err)
	assert.Equal(t, cert.Certificate[0], pair.Certificate[0])

	b, err := c.DownloadCABundle(context.Background(), "Inst-9")
	require.NoError(t, err)
	assert.NoError(t, handshake(t, cert, b.TLSConfig(inst.DomainName())))
	assert.NoError(t, handshake(t, pair, b.TLSConfig(inst.DomainName())))
	assert.Error(t, handshake(t, cert, b.TLSConfig("redis-other.dcs.example.com")))
}

// handshake serves cert on loopback and returns the error of a TLS client
// handshake with cfg.
func handshake(t *testing.T, cert tls.Certificate, cfg *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.(*tls.Conn).Handshake()
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
	if err == nil {
		conn.Close()
	}
	<-done
	return err
}
