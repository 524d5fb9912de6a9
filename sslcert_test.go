package dcsssl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testEndpoint = "https://dcs.cn-north-4.myhuaweicloud.com"
	testProject  = "proj1"
	testInstance = "inst-1"
	testAK       = "AKTEST"
	testSK       = "SKTEST-secret-key-value"
	testToken    = "TOKEN-secret-security-token"
	downloadURL  = testEndpoint + "/v2/" + testProject + "/instances/" + testInstance + "/ssl-certs/download"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testBed is a client on a mocked transport with a fixed clock and sleeps
// that are recorded instead of slept.
type testBed struct {
	c      *Client
	mock   *httpmock.MockTransport
	mu     sync.Mutex
	sleeps []time.Duration
}

func (tb *testBed) slept() []time.Duration {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]time.Duration(nil), tb.sleeps...)
}

// setup returns a client for testProject on a mocked transport.
func setup(t *testing.T, creds Credentials, opts ...Option) *testBed {
	t.Helper()
	tb := &testBed{mock: httpmock.NewMockTransport()}
	opts = append([]Option{WithEndpoint(testEndpoint), WithHTTPClient(&http.Client{Transport: tb.mock})}, opts...)
	c, err := NewClient(testProject, creds, opts...)
	require.NoError(t, err)
	c.now = func() time.Time { return testNow }
	c.sleep = func(ctx context.Context, d time.Duration) error {
		tb.mu.Lock()
		tb.sleeps = append(tb.sleeps, d)
		tb.mu.Unlock()
		return ctx.Err()
	}
	c.jitter = func(n int64) int64 { return n - 1 } // the longest wait full jitter allows
	tb.c = c
	return tb
}

func staticCreds() Credentials { return Credentials{AccessKey: testAK, SecretKey: testSK} }

func jsonResponder(status int, body string, requestID string) httpmock.Responder {
	return func(*http.Request) (*http.Response, error) {
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		if requestID != "" {
			resp.Header.Set("X-Request-Id", requestID)
		}
		return resp, nil
	}
}

func TestDownloadSSLCertSuccess(t *testing.T) {
	tb := setup(t, staticCreds())
	var got *http.Request
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		got = r
		return jsonResponder(200, `{"file_name":"ssl.zip","link":"https://b.obs.example.com:443/ssl-x/ssl.zip?AWSAccessKeyId=A&Expires=1767326645&Signature=S","bucket_name":"b"}`, "rid")(r)
	})

	cert, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, &SSLCert{FileName: "ssl.zip", Link: "https://b.obs.example.com:443/ssl-x/ssl.zip?AWSAccessKeyId=A&Expires=1767326645&Signature=S", BucketName: "b"}, cert)

	require.NotNil(t, got)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	assert.Equal(t, testProject, got.Header.Get("X-Project-Id"))
	assert.Equal(t, DefaultUserAgent, got.Header.Get("User-Agent"))
	assert.Empty(t, got.Header.Values("X-Security-Token"))
	assert.Nil(t, got.Body, "the download API takes no body")
}

// TestSignatureGolden checks the headers the server receives against values
// computed by hand from SDK-HMAC-SHA256 (canonical request, string to sign,
// HMAC-SHA256 with the SK), not by the signer under test:
//
//	POST\n/v2/proj1/instances/inst-1/ssl-certs/download/\n\n
//	x-project-id:proj1\nx-sdk-date:20260102T030405Z\n\n
//	x-project-id;x-sdk-date\ne3b0c442...b855 (SHA-256 of the empty body)
func TestSignatureGolden(t *testing.T) {
	cases := []struct {
		name      string
		creds     Credentials
		call      func(*Client) error
		method    string
		url       string
		body      string
		signed    string
		signature string
	}{
		{
			name:      "download",
			creds:     Credentials{AccessKey: testAK, SecretKey: "SKTEST"},
			call:      func(c *Client) error { _, err := c.DownloadSSLCert(context.Background(), testInstance); return err },
			method:    http.MethodPost,
			url:       downloadURL,
			signed:    "x-project-id;x-sdk-date",
			signature: "11258044f687e86160fda5bd6d588ff427c57c3c348a4915ebe02e48baf5de47",
		},
		{
			name:      "switch with security token and body",
			creds:     Credentials{AccessKey: testAK, SecretKey: "SKTEST", SecurityToken: "TOKEN"},
			call:      func(c *Client) error { _, err := c.SetSSL(context.Background(), testInstance, true); return err },
			method:    http.MethodPut,
			url:       testEndpoint + "/v2/proj1/instances/inst-1/ssl",
			body:      `{"enabled":true}`,
			signed:    "x-project-id;x-sdk-date;x-security-token",
			signature: "bd4118ed75274d70db327ba1ac2b206027d9c9901ef2839f9675573ed0525ed4",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, tc.creds)
			var hdr http.Header
			var body []byte
			tb.mock.RegisterResponder(tc.method, tc.url, func(r *http.Request) (*http.Response, error) {
				hdr = r.Header.Clone()
				if r.Body != nil {
					body, _ = io.ReadAll(r.Body)
				}
				return jsonResponder(200, `{"file_name":"f","link":"https://l/x","bucket_name":"b","job_id":"j"}`, "")(r)
			})
			require.NoError(t, tc.call(tb.c))
			assert.Equal(t, tc.body, string(body), "the bytes sent are the bytes signed")
			assert.Equal(t, "20260102T030405Z", hdr.Get("X-Sdk-Date"))
			assert.Equal(t, "SDK-HMAC-SHA256 Access=AKTEST, SignedHeaders="+tc.signed+", Signature="+tc.signature,
				hdr.Get("Authorization"))
		})
	}
}

func TestSecurityTokenSent(t *testing.T) {
	tb := setup(t, Credentials{AccessKey: testAK, SecretKey: testSK, SecurityToken: testToken})
	var got http.Header
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return jsonResponder(200, `{"link":"https://l/x"}`, "")(r)
	})
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, testToken, got.Get("X-Security-Token"))
	assert.Contains(t, got.Get("Authorization"), "x-security-token", "the token is signed")

	// Requests of the official SDK are reused between calls: one with a
	// token must never lend it to one without.
	plain := setup(t, staticCreds())
	plain.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return jsonResponder(200, `{"link":"https://l/x"}`, "")(r)
	})
	for i := 0; i < 3; i++ {
		_, err = tb.c.DownloadSSLCert(context.Background(), testInstance)
		require.NoError(t, err)
		_, err = plain.c.DownloadSSLCert(context.Background(), testInstance)
		require.NoError(t, err)
		assert.Empty(t, got.Values("X-Security-Token"))
		assert.Contains(t, got.Get("Authorization"), "SignedHeaders=x-project-id;x-sdk-date,")
	}
}

func TestDownloadSSLCertErrors(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		requestID  string
		wantCode   string
		wantMsg    string
		wantExtMsg string
		wantReqID  string
		wantText   string
		is         error
	}{
		{
			name: "400 DCS.4201", status: 400, requestID: "3f2a9c",
			body:     `{"error_code":"DCS.4201","error_msg":"Do not support SSL.","error_ext_msg":null}`,
			wantCode: "DCS.4201", wantMsg: "Do not support SSL.", wantReqID: "3f2a9c",
			wantText: "dcsssl: download SSL cert: 400 DCS.4201: Do not support SSL. (request id 3f2a9c)",
			is:       ErrSSLNotSupported,
		},
		{
			name: "500 DCS.5010", status: 500,
			body:     `{"error_code":"DCS.5010","error_msg":"Failed to operate SSL in database.","error_ext_msg":"detail"}`,
			wantCode: "DCS.5010", wantMsg: "Failed to operate SSL in database.", wantExtMsg: "detail",
			wantText: "dcsssl: download SSL cert: 500 DCS.5010: Failed to operate SSL in database. (detail)",
		},
		{
			name: "gateway 401 with request_id in body", status: 401,
			body:      `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail","request_id":"body-rid"}`,
			wantCode:  "APIGW.0301",
			wantMsg:   "Incorrect IAM authentication information: verify aksk signature fail",
			wantReqID: "body-rid",
			wantText:  "dcsssl: download SSL cert: 401 APIGW.0301: Incorrect IAM authentication information: verify aksk signature fail (request id body-rid)",
			is:        ErrUnauthorized,
		},
		{
			name: "header request id wins over body", status: 401, requestID: "hdr-rid",
			body:     `{"error_code":"APIGW.0301","error_msg":"x","request_id":"body-rid"}`,
			wantCode: "APIGW.0301", wantMsg: "x", wantReqID: "hdr-rid",
		},
		{
			name: "HTML 502", status: 502,
			body:     "<html><body><h1>502 Bad Gateway</h1>\n</body></html>",
			wantMsg:  "<html><body><h1>502 Bad Gateway</h1> </body></html>",
			wantText: "dcsssl: download SSL cert: 502: <html><body><h1>502 Bad Gateway</h1> </body></html>",
		},
		{
			name: "empty body", status: 503,
			wantMsg:  "Service Unavailable",
			wantText: "dcsssl: download SSL cert: 503: Service Unavailable",
		},
		{
			name: "404 unknown API", status: 404,
			body:     `{"error_code":"APIGW.0101","error_msg":"The API does not exist"}`,
			wantCode: "APIGW.0101", wantMsg: "The API does not exist",
			is: ErrNotFound,
		},
		{
			name: "429", status: 429, body: `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}`,
			wantCode: "APIGW.0308", wantMsg: "The throttling threshold has been reached",
			is: ErrThrottled,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds(), WithRetry(NoRetry))
			tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(tc.status, tc.body, tc.requestID))
			cert, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
			require.Error(t, err)
			assert.Nil(t, cert)
			var de *DCSError
			require.True(t, errors.As(err, &de), "%T %v", err, err)
			assert.Equal(t, tc.status, de.StatusCode)
			assert.Equal(t, tc.wantCode, de.ErrorCode)
			assert.Equal(t, tc.wantMsg, de.ErrorMsg)
			assert.Equal(t, tc.wantExtMsg, de.ErrorExtMsg)
			assert.Equal(t, tc.wantReqID, de.RequestID)
			if tc.wantText != "" {
				assert.Equal(t, tc.wantText, err.Error())
			}
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			if tc.is != ErrSSLNotSupported {
				assert.NotErrorIs(t, err, ErrSSLNotSupported)
			}
		})
	}
}

func TestErrorBodyExcerptIsBounded(t *testing.T) {
	tb := setup(t, staticCreds(), WithRetry(NoRetry))
	huge := strings.Repeat("x", 10*MaxErrorBytes)
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(502, huge, ""))
	_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
	var de *DCSError
	require.ErrorAs(t, err, &de)
	assert.LessOrEqual(t, len(de.ErrorMsg), excerptLen+len("…"))
	assert.True(t, strings.HasSuffix(de.ErrorMsg, "…"))
}

func TestDownloadSSLCertInvalidSuccessBody(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"not JSON", "<html>oops</html>", `dcsssl: download SSL cert: dcsssl: invalid response: 200 answer is not the expected JSON`},
		{"empty", "", `200 answer is not the expected JSON`},
		{"missing link", `{"file_name":"a.zip","bucket_name":"b"}`, `200 answer has no link: "{\"file_name\":\"a.zip\",\"bucket_name\":\"b\"}"`},
		{"wrong type", `{"link":42}`, `field "link" is a JSON number, want string`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := setup(t, staticCreds())
			tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(200, tc.body, ""))
			cert, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
			assert.Nil(t, cert)
			require.ErrorIs(t, err, ErrInvalidResponse)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 1, tb.mock.GetTotalCallCount(), "an unusable 200 is not retried")
		})
	}
}

func TestInvalidIDsMakeNoRequest(t *testing.T) {
	tb := setup(t, staticCreds())
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "a?b", "a%2fb", "é", "a\nb", strings.Repeat("a", 129)} {
		_, err := tb.c.DownloadSSLCert(context.Background(), id)
		assert.ErrorIs(t, err, ErrInvalidInput, "id %q", id)
	}
	assert.Equal(t, 0, tb.mock.GetTotalCallCount())

	for _, pid := range []string{"", "..", "p/q", "p q"} {
		_, err := NewClient(pid, staticCreds(), WithRegion("cn-north-4"))
		assert.ErrorIs(t, err, ErrInvalidInput, "project %q", pid)
	}
}

func TestContextCancelledAndDeadline(t *testing.T) {
	tb := setup(t, staticCreds())
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tb.c.DownloadSSLCert(ctx, testInstance)
	assert.ErrorIs(t, err, context.Canceled)

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = tb.c.DownloadSSLCert(ctx, testInstance)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, tb.slept(), "a context error is not retried")
}

func TestRedirectIsNotFollowed(t *testing.T) {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	// Without a jar requests go to the transport directly; with one,
	// through http.Client.Do: neither follows.
	for name, jar := range map[string]http.CookieJar{"transport": nil, "http.Client with a jar": jar} {
		t.Run(name, func(t *testing.T) {
			mock := httpmock.NewMockTransport()
			c, err := NewClient(testProject, staticCreds(), WithEndpoint(testEndpoint),
				WithHTTPClient(&http.Client{Transport: mock, Jar: jar}), WithRetry(NoRetry))
			require.NoError(t, err)
			mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
				resp := httpmock.NewStringResponse(http.StatusFound, "")
				resp.Header.Set("Location", "https://elsewhere.example.com/steal")
				return resp, nil
			})
			mock.RegisterResponder(http.MethodPost, "https://elsewhere.example.com/steal", httpmock.NewStringResponder(200, `{"link":"https://l/x"}`))
			_, err = c.DownloadSSLCert(context.Background(), testInstance)
			var de *DCSError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, http.StatusFound, de.StatusCode)
			assert.Contains(t, err.Error(), "redirects are not followed")
			assert.Equal(t, 1, mock.GetTotalCallCount())
		})
	}
}

func TestNewClientValidation(t *testing.T) {
	creds := staticCreds()
	cases := []struct {
		name  string
		creds Credentials
		opts  []Option
		want  string
	}{
		{"no region or endpoint", creds, nil, "neither a region nor an endpoint"},
		{"no AK", Credentials{SecretKey: "s"}, []Option{WithRegion("cn-north-4")}, "access key and a secret key"},
		{"no SK", Credentials{AccessKey: "a"}, []Option{WithRegion("cn-north-4")}, "access key and a secret key"},
		{"bad region", creds, []Option{WithRegion("cn north/4")}, "not a region name"},
		{"endpoint without scheme", creds, []Option{WithEndpoint("dcs.example.com")}, "scheme must be https"},
		{"endpoint ftp", creds, []Option{WithEndpoint("ftp://dcs.example.com")}, "scheme must be https"},
		{"endpoint no host", creds, []Option{WithEndpoint("https://")}, "no host"},
		{"endpoint with path", creds, []Option{WithEndpoint("https://dcs.example.com/v2")}, "without a path"},
		{"endpoint with query", creds, []Option{WithEndpoint("https://dcs.example.com?a=b")}, "query"},
		{"endpoint with user", creds, []Option{WithEndpoint("https://u:p@dcs.example.com")}, "user information"},
		{"endpoint unparseable", creds, []Option{WithEndpoint("https://[::1")}, "endpoint"},
		{"nil http client", creds, []Option{WithRegion("r"), WithHTTPClient(nil)}, "nil *http.Client"},
		{"negative retry", creds, []Option{WithRegion("r"), WithRetry(RetryPolicy{MaxAttempts: -1})}, "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(testProject, tc.creds, tc.opts...)
			assert.Nil(t, c)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "p@", "no user information echoed")
		})
	}

	c, err := NewClient(testProject, creds, WithRegion("cn-north-4"))
	require.NoError(t, err)
	assert.Equal(t, "https://dcs.cn-north-4.myhuaweicloud.com", c.Endpoint())
	c, err = NewClient(testProject, creds, WithRegion("cn-north-4"), WithEndpoint("http://127.0.0.1:8080/"))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080", c.Endpoint(), "WithEndpoint wins over WithRegion")
}

func TestNewClientFromEnv(t *testing.T) {
	clear := func(t *testing.T) {
		for _, k := range []string{EnvAccessKey, EnvSecretKey, EnvSecurityToken, EnvProjectID, EnvRegion, EnvCredentialType, EnvEndpointPrefix + "CN_NORTH_4"} {
			t.Setenv(k, "")
		}
	}
	t.Run("complete", func(t *testing.T) {
		clear(t)
		t.Setenv(EnvAccessKey, "ak")
		t.Setenv(EnvSecretKey, "sk")
		t.Setenv(EnvSecurityToken, "tok")
		t.Setenv(EnvProjectID, "p1")
		t.Setenv(EnvRegion, "cn-north-4")
		c, err := NewClientFromEnv()
		require.NoError(t, err)
		assert.Equal(t, "p1", c.ProjectID())
		assert.Equal(t, "https://dcs.cn-north-4.myhuaweicloud.com", c.Endpoint())
		got, err := c.creds.get(context.Background())
		require.NoError(t, err)
		assert.Equal(t, Credentials{AccessKey: "ak", SecretKey: "sk", SecurityToken: "tok"}, got)
	})
	t.Run("endpoint override", func(t *testing.T) {
		clear(t)
		t.Setenv(EnvAccessKey, "ak")
		t.Setenv(EnvSecretKey, "sk")
		t.Setenv(EnvProjectID, "p1")
		t.Setenv(EnvRegion, "cn-north-4")
		t.Setenv(EnvEndpointPrefix+"CN_NORTH_4", "https://dcs.internal.example.com")
		c, err := NewClientFromEnv()
		require.NoError(t, err)
		assert.Equal(t, "https://dcs.internal.example.com", c.Endpoint())
	})
	missing := []struct {
		name  string
		unset string
	}{
		{"no AK", EnvAccessKey},
		{"no SK", EnvSecretKey},
		{"no project", EnvProjectID},
		{"no region", EnvRegion},
	}
	for _, tc := range missing {
		t.Run(tc.name, func(t *testing.T) {
			clear(t)
			t.Setenv(EnvAccessKey, "ak")
			t.Setenv(EnvSecretKey, "sk")
			t.Setenv(EnvProjectID, "p1")
			t.Setenv(EnvRegion, "cn-north-4")
			t.Setenv(tc.unset, "")
			_, err := NewClientFromEnv()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.unset)
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	creds := Credentials{AccessKey: testAK, SecretKey: testSK, SecurityToken: testToken, Expires: testNow}
	tb := setup(t, creds, WithRetry(NoRetry))
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(401, `{"error_code":"APIGW.0301","error_msg":"bad"}`, "r"))
	_, callErr := tb.c.DownloadSSLCert(context.Background(), testInstance)
	require.Error(t, callErr)

	cert := SSLCert{FileName: "f.zip", Link: "https://b.obs.example.com/ssl/f.zip?AWSAccessKeyId=OBSAK&Expires=1&Signature=OBSSIG", BucketName: "b"}
	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		printed = append(printed,
			fmt.Sprintf(verb, creds), fmt.Sprintf(verb, &creds),
			fmt.Sprintf(verb, cert), fmt.Sprintf(verb, &cert),
			fmt.Sprintf(verb, tb.c), fmt.Sprintf(verb, *tb.c),
			fmt.Sprintf(verb, struct{ C Credentials }{creds}),
		)
	}
	printed = append(printed, callErr.Error())
	for _, s := range printed {
		for _, secret := range []string{testSK, testToken, "Signature", "OBSSIG", "OBSAK", "SDK-HMAC-SHA256"} {
			assert.NotContains(t, s, secret)
		}
	}
	assert.Contains(t, fmt.Sprint(creds), testAK, "the access key is not a secret and helps debugging")
	assert.Contains(t, fmt.Sprint(cert), "https://b.obs.example.com/ssl/f.zip?[redacted]")
}

func TestConcurrentUse(t *testing.T) {
	tb := setup(t, staticCreds())
	tb.mock.RegisterResponder(http.MethodPost, downloadURL, jsonResponder(200, `{"link":"https://l/x"}`, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tb.c.DownloadSSLCert(context.Background(), testInstance)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 32, tb.mock.GetTotalCallCount())
}

// trackingBody records whether it was read to the end and closed.
type trackingBody struct {
	r      io.Reader
	eof    bool
	closed bool
}

func (b *trackingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *trackingBody) Close() error { b.closed = true; return nil }

func TestBodiesDrainedAndClosed(t *testing.T) {
	for _, status := range []int{200, 400, 502} {
		tb := setup(t, staticCreds(), WithRetry(NoRetry))
		body := &trackingBody{r: strings.NewReader(`{"link":"https://l/x","error_code":"DCS.4201"}` + strings.Repeat(" ", 1000))}
		tb.mock.RegisterResponder(http.MethodPost, downloadURL, func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: status, Body: body, Header: http.Header{}, Request: r}, nil
		})
		_, _ = tb.c.DownloadSSLCert(context.Background(), testInstance)
		assert.True(t, body.eof, "status %d: body drained", status)
		assert.True(t, body.closed, "status %d: body closed", status)
	}
}

// roundTripFunc is a transport made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMisbehavingTransport(t *testing.T) {
	cases := map[string]roundTripFunc{
		"nil response, nil error": func(*http.Request) (*http.Response, error) { return nil, nil },
		"nil body": func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 502, Header: http.Header{}, Request: r}, nil
		},
	}
	for name, rt := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := NewClient(testProject, staticCreds(), WithEndpoint(testEndpoint),
				WithHTTPClient(&http.Client{Transport: rt}), WithRetry(NoRetry))
			require.NoError(t, err)
			_, err = c.DownloadSSLCert(context.Background(), testInstance)
			assert.Error(t, err)
		})
	}
}

func TestHTTPClientTimeoutBoundsEachAttempt(t *testing.T) {
	var calls atomic.Int32
	slowThenFast := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			<-r.Context().Done() // the attempt's deadline, not the caller's
			return nil, r.Context().Err()
		}
		return jsonResponder(200, `{"link":"https://l/x"}`, "")(r)
	})
	c, err := NewClient(testProject, staticCreds(), WithEndpoint(testEndpoint),
		WithHTTPClient(&http.Client{Transport: slowThenFast, Timeout: 50 * time.Millisecond}),
		WithRetry(RetryPolicy{BaseDelay: time.Millisecond}))
	require.NoError(t, err)
	_, err = c.DownloadSSLCert(context.Background(), testInstance)
	require.NoError(t, err)
	assert.Equal(t, int32(2), calls.Load(), "the timed-out attempt was retried")

	calls.Store(0)
	c.retry = NoRetry
	_, err = c.DownloadSSLCert(context.Background(), testInstance)
	assert.ErrorContains(t, err, "attempt timed out after 50ms")
}
