package dcsssl

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets feed hostile answers to each decoder. None may panic,
// and each result must keep the promises its caller relies on. Seed corpora
// are in testdata/fuzz; .ci/run runs each target briefly.

func FuzzParseErrorBody(f *testing.F) {
	f.Add(400, []byte(`{"error_code":"DCS.4201","error_msg":"Do not support SSL.","error_ext_msg":null}`))
	f.Add(401, []byte(`{"error_code":"APIGW.0301","error_msg":"x","request_id":"r"}`))
	f.Add(502, []byte("<html>bad gateway</html>"))
	f.Add(503, []byte{})
	f.Add(500, []byte(`{"code":"X","message":"y"}`))
	f.Add(400, []byte("\xff\xfe\x00garbage"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseErrorBody(status, body, true)
		if e.StatusCode != status {
			t.Fatalf("status %d became %d", status, e.StatusCode)
		}
		msg := e.Error()
		if !strings.HasPrefix(msg, "dcsssl: ") {
			t.Fatalf("error text %q", msg)
		}
		if e.ErrorCode == "" && e.ErrorMsg != "" && !utf8.ValidString(e.ErrorMsg) {
			t.Fatalf("excerpt %q is not valid UTF-8", e.ErrorMsg)
		}
		if !json.Valid(body) && len(e.ErrorMsg) > excerptLen+len("…") {
			t.Fatalf("excerpt of %d bytes is unbounded", len(e.ErrorMsg))
		}
	})
}

func FuzzDecodeSuccess(f *testing.F) {
	f.Add([]byte(`{"file_name":"f.zip","link":"https://b.obs.example.com/x?Expires=1","bucket_name":"b"}`))
	f.Add([]byte(`{"enabled":true,"ip":"1.2.3.4","port":"6379","domain_name":"d","ssl_expired_at":"2027-01-01 00:00:00","ssl_validated":true}`))
	f.Add([]byte(`{"enabled":false,"port":6380}`))
	f.Add([]byte(`{"link":""}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"port":"99999999999999999999"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := func() *http.Response {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(body))}
		}
		var cert SSLCert
		if err := decodeJSON(resp(), &cert); err == nil && cert.Link == "" {
			t.Fatal("a certificate without a link was accepted")
		}
		var st sslStatusBody
		if err := decodeJSON(resp(), &st); err == nil {
			if st.Enabled == nil {
				t.Fatal("a status without enabled was accepted")
			}
			if st.Port < 0 || st.Port > 65535 {
				t.Fatalf("port %d accepted", st.Port)
			}
		}
	})
}

func FuzzParseCABundle(f *testing.F) {
	ca := newTestCA(f, "fuzz CA")
	f.Add("ca.crt", ca.pem)
	f.Add("pkg.zip", makeZip(f, zipEntry{"ca.crt", ca.pem}, zipEntry{"README.txt", []byte("hi")}))
	f.Add("pkg.zip", makeZip(f, zipEntry{"a.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}))
	f.Add("pkg.tar.gz", makeTarGz(f, zipEntry{"ssl/ca.crt", ca.pem}, zipEntry{"ssl/README", []byte("hi")}))
	f.Add("x", []byte("\x1f\x8b\x08"))
	f.Add("x", []byte("PK\x03\x04"))
	f.Add("x", []byte("-----BEGIN CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		b, err := ParseCABundle(name, data)
		if err != nil {
			return
		}
		if len(b.Certificates) == 0 || len(b.PEM) == 0 {
			t.Fatal("a bundle without certificates was accepted")
		}
		for _, c := range b.Certificates {
			if !c.IsCA {
				t.Fatal("a non-CA certificate was accepted")
			}
		}
		if b.TLSConfig("x").RootCAs == nil {
			t.Fatal("no roots")
		}
	})
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2027-03-04 05:06:07", "2027-03-04T05:06:07Z", "2027-03-04T05:06:07+08:00", "", "garbage", "2027-03-04T05:06:07.123456789Z", "9999-12-31 23:59:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, ok := parseTimestamp(s)
		if !ok {
			if !ts.IsZero() {
				t.Fatalf("%q: not ok but %v", s, ts)
			}
			return
		}
		if ts.Location() != time.UTC {
			t.Fatalf("%q: %v is not UTC", s, ts)
		}
	})
}

func FuzzLinkExpiresAt(f *testing.F) {
	for _, s := range []string{
		"https://b.obs.example.com:443/ssl-x/f.zip?AWSAccessKeyId=A&Expires=1767326645&Signature=S",
		"https://h/p?Expires=-62135596800", "https://h/p?Expires=253402300800", "https://h/p?Expires=%00", "::", "https://h/p?Expires=1&Expires=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		ts, ok := (&SSLCert{Link: link}).LinkExpiresAt()
		if !ok {
			if !ts.IsZero() {
				t.Fatalf("%q: not ok but %v", link, ts)
			}
			return
		}
		if y := ts.Year(); y < 1 || y > 9999 {
			t.Fatalf("%q: year %d", link, y)
		}
		u, err := url.Parse(link)
		if err != nil || u.RawQuery == "" {
			return
		}
		if s := (SSLCert{Link: link}).String(); !strings.Contains(s, "?[redacted]") || strings.Contains(s, "?"+u.RawQuery) {
			t.Fatalf("%q printed its query: %s", link, s)
		}
	})
}
