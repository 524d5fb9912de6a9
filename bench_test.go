package dcsssl

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchCertAnswer is the download API's 200 answer used by every benchmark.
const benchCertAnswer = `{"file_name":"ssl.zip","link":"https://b.obs.example.com:443/ssl-x/ssl.zip?AWSAccessKeyId=A&Expires=4102444800&Signature=S","bucket_name":"b"}`

const (
	benchProjectID  = "0123456789abcdef0123456789abcdef"
	benchInstanceID = "11111111-2222-3333-4444-555555555555"
)

var benchCreds = Credentials{AccessKey: "AKEXAMPLE", SecretKey: "SKEXAMPLE"}

// benchTransport answers every request with status 200, body and
// contentType, a fresh body reader each time, without any network. A
// request without an Authorization header (what an unsigned API call
// would be) gets a 401, so a benchmark cannot time a broken call.
type benchTransport struct {
	body        []byte
	contentType string
	needAuth    bool
}

func (t *benchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	status, body := http.StatusOK, t.body
	if t.needAuth && len(req.Header["Authorization"]) == 0 {
		status, body = http.StatusUnauthorized, []byte(`{"error_code":"APIGW.0301","error_msg":"unsigned"}`)
	}
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type": {t.contentType},
			"X-Request-Id": {"0123456789abcdef0123456789abcdef"},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

func benchNewClient(b *testing.B, opts ...Option) *Client {
	b.Helper()
	c, err := NewClient(benchProjectID, benchCreds, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkDownloadSSLCert(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, c *Client) {
		if _, err := c.DownloadSSLCert(ctx, benchInstanceID); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			cert, err := c.DownloadSSLCert(ctx, benchInstanceID)
			if err != nil || cert.BucketName != "b" {
				b.Fatalf("DownloadSSLCert = %v, %v", cert, err)
			}
		}
	}

	b.Run("canned", func(b *testing.B) {
		rt := &benchTransport{body: []byte(benchCertAnswer), contentType: "application/json", needAuth: true}
		run(b, benchNewClient(b,
			WithEndpoint("https://dcs.example.com"),
			WithHTTPClient(&http.Client{Transport: rt})))
	})

	b.Run("loopback-tls", func(b *testing.B) {
		wantPath := "/v2/" + benchProjectID + "/instances/" + benchInstanceID + "/ssl-certs/download"
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != wantPath || r.Header.Get("Authorization") == "" {
				http.Error(w, `{"error_code":"APIGW.0101","error_msg":"not found"}`, http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "0123456789abcdef0123456789abcdef")
			_, _ = io.WriteString(w, benchCertAnswer)
		}))
		defer srv.Close()
		run(b, benchNewClient(b, WithEndpoint(srv.URL), WithHTTPClient(srv.Client())))
	})
}

func BenchmarkFetchCABundle(b *testing.B) {
	ctx := context.Background()
	pkg := benchCAPackage(b)
	rt := &benchTransport{body: pkg, contentType: "application/zip"}
	c := benchNewClient(b,
		WithEndpoint("https://dcs.example.com"),
		WithHTTPClient(&http.Client{Transport: rt}))
	cert := &SSLCert{
		FileName:   "ssl.zip",
		Link:       "https://b.obs.example.com:443/ssl-x/ssl.zip?AWSAccessKeyId=A&Expires=4102444800&Signature=S",
		BucketName: "b",
	}
	if _, err := c.FetchCABundle(ctx, cert); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pkg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		bundle, err := c.FetchCABundle(ctx, cert)
		if err != nil || len(bundle.Certificates) != 1 {
			b.Fatalf("FetchCABundle = %v, %v", bundle, err)
		}
	}
}

// benchCAPackage returns a zip like the one the download link serves: a
// self-signed RSA-2048 CA as ca.crt, next to a README.
func benchCAPackage(b *testing.B) []byte {
	b.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"CN"}, Organization: []string{"Huawei"}, CommonName: "DCS Redis CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range []struct{ name, content string }{
		{"ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))},
		{"README.txt", strings.Repeat("Use ca.crt with redis-cli --tls --cacert ca.crt.\n", 4)},
	} {
		w, err := zw.Create(e.name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(w, e.content); err != nil {
			b.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
