package dcsssl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
)

// Version is this library's version, sent in the default User-Agent.
const Version = "0.1.0"

// DefaultUserAgent is the User-Agent sent unless WithUserAgent overrides it.
const DefaultUserAgent = "dcsssl-go/" + Version

// Size limits of what the client reads. Past a limit, reading stops and the
// call fails with an error wrapping ErrResponseTooLarge.
const (
	MaxResponseBytes = 1 << 20  // a 2xx JSON answer
	MaxErrorBytes    = 64 << 10 // a non-2xx answer
)

// Environment variables read by NewClientFromEnv and EnvCredentials; the
// same names the official SDK reads.
const (
	EnvAccessKey      = "HUAWEICLOUD_SDK_AK"
	EnvSecretKey      = "HUAWEICLOUD_SDK_SK"
	EnvSecurityToken  = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
	EnvProjectID      = "HUAWEICLOUD_SDK_PROJECT_ID"
	EnvRegion         = "HUAWEICLOUD_SDK_REGION"
	EnvCredentialType = "HUAWEICLOUD_SDK_CREDENTIAL_TYPE"
	// EnvEndpointPrefix + the region in upper case with "-" as "_" overrides
	// the endpoint, e.g. HUAWEICLOUD_SDK_REGION_DCS_CN_NORTH_4.
	EnvEndpointPrefix = "HUAWEICLOUD_SDK_REGION_DCS_"
)

// Client calls the DCS SSL APIs of one project. It is safe for concurrent
// use; create one and share it.
type Client struct {
	projectID     string
	region        string
	endpoint      string // scheme://host[:port], no trailing slash
	instancesPath string // /v2/{project_id}/instances/

	userHC *http.Client // as given, for presigned downloads (see linkClient)
	apiHC  *http.Client // a copy of userHC that never follows redirects
	// apiRT is userHC's transport, used directly when userHC has no cookie
	// jar (see send), with userHC's Timeout as apiTimeout.
	apiRT      http.RoundTripper
	apiTimeout time.Duration
	linkHC     *http.Client
	userAgent  string

	creds            *credentialCache
	provider         CredentialsProvider
	refreshWindow    time.Duration
	metadataFallback bool

	retry        RetryPolicy
	logger       *slog.Logger
	pollInterval time.Duration

	// Injected in tests: the clock, the sleep between attempts and the
	// jitter source. Zero values use the real ones.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64

	rawEndpoint string
	optErr      error
}

// Option configures a Client in NewClient and NewClientFromEnv.
type Option func(*Client)

// WithRegion sets the region; the endpoint is https://dcs.{region}.myhuaweicloud.com.
func WithRegion(region string) Option {
	return func(c *Client) { c.region = region }
}

// WithEndpoint sets the full base URL of the DCS API, e.g.
// "https://dcs.cn-north-4.myhuaweicloud.com". It wins over WithRegion.
func WithEndpoint(endpoint string) Option {
	return func(c *Client) { c.rawEndpoint = endpoint }
}

// WithHTTPClient sets the HTTP client used for every request; the default is
// a client with a 30-second timeout. The client given is not modified: API
// calls use a copy of it that never follows redirects.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc == nil {
			c.optErr = errors.New("WithHTTPClient: nil *http.Client")
			return
		}
		c.userHC = hc
	}
}

// WithUserAgent sets the User-Agent header; the default is DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithPollInterval sets how often WaitForSSL asks for the SSL status; the
// default is 5 seconds.
func WithPollInterval(d time.Duration) Option {
	return func(c *Client) {
		if d <= 0 {
			c.optErr = fmt.Errorf("WithPollInterval: %v is not positive", d)
			return
		}
		c.pollInterval = d
	}
}

// WithLogger sends one debug record per attempt and one warning per retry
// to l. Records never hold the secret key, the security token, the
// Authorization header or the query of a presigned link. The default is no
// logging.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) { c.logger = l }
}

const (
	defaultTimeout      = 30 * time.Second
	defaultPollInterval = 5 * time.Second
)

// NewClient returns a client for the project projectID that signs with
// creds. It refuses, without any network I/O, an invalid project ID, missing
// credentials (unless WithCredentialsProvider gives them), a malformed
// endpoint, and a client with neither region nor endpoint.
func NewClient(projectID string, creds Credentials, opts ...Option) (*Client, error) {
	c := &Client{}
	for _, opt := range opts {
		opt(c)
	}
	return c.init(projectID, creds)
}

// NewClientFromEnv returns a client configured from the environment:
// HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN,
// HUAWEICLOUD_SDK_PROJECT_ID, the region from HUAWEICLOUD_SDK_REGION and an
// endpoint override from HUAWEICLOUD_SDK_REGION_DCS_{REGION}. Options win
// over the environment. Without HUAWEICLOUD_SDK_AK it uses the ECS metadata
// service only if asked, by WithMetadataFallback or
// HUAWEICLOUD_SDK_CREDENTIAL_TYPE=metadata. Its errors name the variable
// that is missing.
func NewClientFromEnv(opts ...Option) (*Client, error) {
	c := &Client{}
	for _, opt := range opts {
		opt(c)
	}
	projectID := os.Getenv(EnvProjectID)
	if projectID == "" {
		return nil, fmt.Errorf("dcsssl: new client: %s is not set", EnvProjectID)
	}
	var creds Credentials
	if c.provider == nil {
		switch {
		case os.Getenv(EnvAccessKey) != "":
			creds = Credentials{
				AccessKey:     os.Getenv(EnvAccessKey),
				SecretKey:     os.Getenv(EnvSecretKey),
				SecurityToken: os.Getenv(EnvSecurityToken),
			}
			if creds.SecretKey == "" {
				return nil, fmt.Errorf("dcsssl: new client: %s is set but %s is not", EnvAccessKey, EnvSecretKey)
			}
		case c.metadataFallback || strings.EqualFold(os.Getenv(EnvCredentialType), "metadata"):
			c.provider = MetadataCredentials()
		default:
			return nil, fmt.Errorf("dcsssl: new client: %s and %s are not set (or set %s=metadata on a cloud server with an agency)",
				EnvAccessKey, EnvSecretKey, EnvCredentialType)
		}
	}
	if c.rawEndpoint == "" && c.region == "" {
		c.region = os.Getenv(EnvRegion)
		if c.region == "" {
			return nil, fmt.Errorf("dcsssl: new client: %s is not set", EnvRegion)
		}
	}
	if c.rawEndpoint == "" {
		key := EnvEndpointPrefix + strings.ToUpper(strings.ReplaceAll(c.region, "-", "_"))
		c.rawEndpoint = os.Getenv(key)
	}
	return c.init(projectID, creds)
}

// init validates the options and prepares everything that does not change
// from call to call.
func (c *Client) init(projectID string, creds Credentials) (*Client, error) {
	if c.optErr != nil {
		return nil, fmt.Errorf("dcsssl: new client: %w", c.optErr)
	}
	if err := checkID("project ID", projectID); err != nil {
		return nil, fmt.Errorf("dcsssl: new client: %w", err)
	}
	c.projectID = projectID
	c.instancesPath = "/v2/" + projectID + "/instances/"

	endpoint, err := c.resolveEndpoint()
	if err != nil {
		return nil, fmt.Errorf("dcsssl: new client: %w", err)
	}
	c.endpoint = endpoint

	if c.provider == nil {
		if creds.AccessKey == "" || creds.SecretKey == "" {
			return nil, errors.New("dcsssl: new client: credentials need an access key and a secret key")
		}
		c.provider = StaticCredentials(creds)
	}
	if c.refreshWindow == 0 {
		c.refreshWindow = DefaultRefreshWindow
	}
	c.creds = newCredentialCache(c.provider, c.refreshWindow, c.clockNow, c.logger)
	if sp, ok := c.provider.(staticProvider); ok {
		c.creds.prime(Credentials(sp))
	}

	if c.userHC == nil {
		c.userHC = &http.Client{Timeout: defaultTimeout}
	}
	api := *c.userHC
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.apiHC = &api
	if c.userHC.Jar == nil {
		c.apiRT = c.userHC.Transport
		if c.apiRT == nil {
			c.apiRT = http.DefaultTransport
		}
		c.apiTimeout = c.userHC.Timeout
	}
	c.linkHC = linkClient(c.userHC)

	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.pollInterval == 0 {
		c.pollInterval = defaultPollInterval
	}
	c.retry = c.retry.withDefaults()
	return c, nil
}

func (c *Client) resolveEndpoint() (string, error) {
	raw := c.rawEndpoint
	if raw == "" {
		if c.region == "" {
			return "", errors.New("neither a region nor an endpoint is set")
		}
		if !isRegion(c.region) {
			return "", fmt.Errorf("region %q is not a region name", c.region)
		}
		return "https://dcs." + c.region + ".myhuaweicloud.com", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("endpoint %q: scheme must be https (or http), not %q", raw, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("endpoint %q: no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("endpoint %q: must not hold user information", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("endpoint %q: must not have a query or fragment", raw)
	case strings.Trim(u.Path, "/") != "":
		return "", fmt.Errorf("endpoint %q: must be a base URL without a path", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func isRegion(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// checkID refuses an ID that could change the request path: empty, ".",
// "..", or holding anything outside [A-Za-z0-9._-].
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidInput, what)
	}
	if id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("%w: %s %q is not an ID", ErrInvalidInput, what, id)
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return fmt.Errorf("%w: %s %q may hold only letters, digits, '.', '_' and '-'", ErrInvalidInput, what, id)
		}
	}
	return nil
}

// Endpoint returns the base URL the client sends API requests to.
func (c *Client) Endpoint() string { return c.endpoint }

// ProjectID returns the project the client works in.
func (c *Client) ProjectID() string { return c.projectID }

// String describes the client without its credentials.
func (c Client) String() string {
	return "dcsssl.Client{endpoint: " + c.endpoint + ", project: " + c.projectID + "}"
}

// Format prints String for every verb: no verb shows the credentials.
func (c Client) Format(f fmt.State, verb rune) { formatRedacted(f, c.String()) }

// formatRedacted writes s for any verb, so that fmt never falls back to
// printing the fields of a type holding secrets.
func formatRedacted(f fmt.State, s string) { _, _ = io.WriteString(f, s) }

// call describes one API operation.
type call struct {
	op         string // for errors and logs: "download SSL cert"
	method     string
	instanceID string
	suffix     string // after /instances/{id}/
	body       string // JSON sent as is; "" for none
	// idempotent is false for calls that change the instance: those are
	// retried only when the request surely did not reach the service.
	idempotent bool
}

// validator is implemented by answers that have required fields.
type validator interface{ validate() error }

// do makes the call, retrying as the policy allows, and decodes a 2xx
// answer into out.
func (c *Client) do(ctx context.Context, cl *call, out any) error {
	if err := checkID("instance ID", cl.instanceID); err != nil {
		return fmt.Errorf("dcsssl: %s: %w", cl.op, err)
	}
	rawURL := c.endpoint + c.instancesPath + cl.instanceID + "/" + cl.suffix
	path := rawURL[len(c.endpoint):]
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.attempt(ctx, cl, path, rawURL, attempt, out)
		if err == nil {
			return nil
		}
		if !c.retryable(ctx, cl, err) || attempt >= c.retry.MaxAttempts {
			return finalError(err, attempt)
		}
		wait := c.retry.backoff(attempt, retryAfter, c.jitterFunc())
		if deadline, ok := ctx.Deadline(); ok && c.clockNow().Add(wait).After(deadline) {
			return finalError(err, attempt)
		}
		c.logRetry(ctx, cl, path, attempt, wait, err)
		if serr := c.sleepFor(ctx, wait); serr != nil {
			return finalError(fmt.Errorf("dcsssl: %s: %w (while waiting to retry after: %v)", cl.op, serr, err), attempt)
		}
	}
}

func finalError(err error, attempts int) error {
	if attempts > 1 {
		return &attemptsError{err: err, attempts: attempts}
	}
	return err
}

// transportError is an attempt that got no answer.
type transportError struct {
	op    string
	err   error
	wrote bool // the request was written to the connection
}

func (e *transportError) Error() string { return "dcsssl: " + e.op + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// bodyError is an attempt that got an answer but could not read all of it.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading response: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// attempt signs and sends the request once and handles the answer. It
// returns the Retry-After the server asked for, if any.
func (c *Client) attempt(ctx context.Context, cl *call, path, rawURL string, attempt int, out any) (time.Duration, error) {
	creds, err := c.creds.get(ctx)
	if err != nil {
		return 0, fmt.Errorf("dcsssl: %s: %w", cl.op, err)
	}
	actx, cancel := c.attemptContext(ctx)
	defer cancel() // after closeBody below: the deadline covers the body
	// Set by the transport's goroutine: whether the request left us.
	var wrote atomic.Bool
	if !cl.idempotent {
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			WroteHeaders: func() { wrote.Store(true) },
		})
	}
	req, err := c.newRequest(actx, cl.method, path, rawURL, cl.body, creds)
	if err != nil {
		return 0, fmt.Errorf("dcsssl: %s: %w", cl.op, err)
	}
	start := time.Now()
	resp, err := c.send(req)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		err = fmt.Errorf("attempt timed out after %v: %w", c.apiTimeout, err)
	}
	if err != nil {
		c.logAttempt(ctx, cl, path, attempt, start, 0, "", "", err)
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return 0, &transportError{op: cl.op, err: stripURLError(err), wrote: wrote.Load()}
	}
	defer closeBody(resp.Body)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		derr, readErr := readDCSError(resp, cl.op)
		c.logAttempt(ctx, cl, path, attempt, start, resp.StatusCode, derr.RequestID, derr.ErrorCode, readErr)
		if ctx.Err() != nil {
			// The body was cut short by the caller's context (which may read
			// as a clean EOF): that is the cause, not the answer so far.
			return 0, fmt.Errorf("dcsssl: %s: reading the %d answer: %w", cl.op, resp.StatusCode, ctx.Err())
		}
		return retryAfter(resp.Header.Get("Retry-After"), c.clockNow()), derr
	}
	err = decodeJSON(resp, out)
	c.logAttempt(ctx, cl, path, attempt, start, resp.StatusCode, resp.Header.Get("X-Request-Id"), "", err)
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		// A body cut short by the context may read as a clean EOF.
		return 0, fmt.Errorf("dcsssl: %s: reading response: %w", cl.op, ctx.Err())
	case actx.Err() != nil:
		err = &bodyError{err: fmt.Errorf("attempt timed out after %v: %w", c.apiTimeout, actx.Err())}
	}
	return 0, fmt.Errorf("dcsssl: %s: %w", cl.op, err)
}

var noCancel context.CancelFunc = func() {}

// attemptContext bounds one attempt by the HTTP client's Timeout when the
// client's transport is used directly (see send).
func (c *Client) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.apiRT == nil || c.apiTimeout <= 0 {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.apiTimeout)
}

// send makes one API request. API requests never follow redirects and, with
// no cookie jar, http.Client.Do would add nothing but its redirect
// bookkeeping (a copy of the headers and the URL for every request): the
// request then goes to the client's transport directly, its Timeout applied
// by attemptContext. With a jar, http.Client.Do sends it.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.apiRT == nil {
		return c.apiHC.Do(req)
	}
	resp, err := c.apiRT.RoundTrip(req)
	switch {
	case err != nil:
		return nil, err
	case resp == nil:
		// What http.Client.Do guards against too.
		return nil, fmt.Errorf("transport %T returned neither a response nor an error", c.apiRT)
	case resp.Body == nil:
		resp.Body = http.NoBody
	}
	return resp, nil
}

// stripURLError drops the *url.Error wrapper, whose text repeats the method
// and URL, keeping what it wraps.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newRequest builds the request and signs it with the official signer.
// rawURL is c.endpoint + path.
func (c *Client) newRequest(ctx context.Context, method, path, rawURL, body string, creds Credentials) (*http.Request, error) {
	contentType := "application/json"
	if body != "" {
		contentType = "application/json;charset=UTF-8"
	}
	// The signer lower-cases every header name it is given (allocating for
	// each mixed-case one, several times) and leaves Content-Type unsigned,
	// so it gets only the signed headers, named in lower case: the same
	// signature for less work. X-Sdk-Date keeps its case: the signer looks
	// it up by that exact name.
	sr := getSigningRequest(creds.SecurityToken != "")
	defer putSigningRequest(sr)
	b := sr.req.Builder().
		WithEndpoint(c.endpoint).
		WithPath(path).
		WithMethod(method).
		// A string body is hashed verbatim: the bytes sent are the bytes
		// signed ("" hashes as no body).
		WithBody("body", body).
		AddHeaderParam("x-project-id", c.projectID).
		// Set here, the signer signs at the client's clock rather than its own.
		AddHeaderParam(signer.HeaderXDate, c.clockNow().UTC().Format(signer.BasicDateFormat))
	if sr.withToken {
		b.AddHeaderParam("x-security-token", creds.SecurityToken)
	}
	signed, err := signer.Sign(b.Build(), creds.AccessKey, creds.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("signing request: %w", err)
	}

	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rb)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	// One backing array for all the header values.
	v := [...]string{contentType, c.projectID, c.userAgent, signed[signer.HeaderXDate], signed[signer.HeaderAuthorization], creds.SecurityToken}
	vals := v[:]
	h := req.Header
	h["Content-Type"] = vals[0:1:1]
	h["X-Project-Id"] = vals[1:2:2]
	h["User-Agent"] = vals[2:3:3]
	h["X-Sdk-Date"] = vals[3:4:4]
	h["Authorization"] = vals[4:5:5]
	if creds.SecurityToken != "" {
		h["X-Security-Token"] = vals[5:6:6]
	}
	return req, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// signingRequest is a request of the official SDK, reused across calls: the
// SDK allocates five maps and two structs for each new one, and the signer
// only reads it (but for X-Sdk-Date, which it sets to what we set). Every
// field the signer reads is set again at each use, and requests that sign a
// security token are kept apart from those that do not, so that a reused
// request never carries a header its new user did not set.
type signingRequest struct {
	req       *request.DefaultHttpRequest
	withToken bool
}

var (
	signingRequestsPlain = sync.Pool{New: func() any {
		return &signingRequest{req: request.NewHttpRequestBuilder().Build()}
	}}
	signingRequestsWithToken = sync.Pool{New: func() any {
		return &signingRequest{req: request.NewHttpRequestBuilder().Build(), withToken: true}
	}}
)

func signingRequestPool(withToken bool) *sync.Pool {
	if withToken {
		return &signingRequestsWithToken
	}
	return &signingRequestsPlain
}

func getSigningRequest(withToken bool) *signingRequest {
	return signingRequestPool(withToken).Get().(*signingRequest)
}

func putSigningRequest(sr *signingRequest) { signingRequestPool(sr.withToken).Put(sr) }

// readLimited reads r into buf, at most limit bytes; past that it fails
// with ErrResponseTooLarge without reading further. It reads into buf's own
// spare room, with no io.LimitReader to allocate.
func readLimited(buf *bytes.Buffer, r io.Reader, limit int64) error {
	for {
		left := limit + 1 - int64(buf.Len())
		if left <= 0 {
			return fmt.Errorf("%w: larger than %s", ErrResponseTooLarge, byteSize(limit))
		}
		buf.Grow(int(min(left, bytes.MinRead)))
		room := buf.AvailableBuffer()
		room = room[:min(int64(cap(room)), left)]
		n, err := r.Read(room)
		buf.Write(room[:n])
		if err == io.EOF {
			if int64(buf.Len()) > limit {
				return fmt.Errorf("%w: larger than %s", ErrResponseTooLarge, byteSize(limit))
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// decodeJSON decodes a 2xx answer into out and checks its required fields.
func decodeJSON(resp *http.Response, out any) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	if err := readLimited(buf, resp.Body, MaxResponseBytes); err != nil {
		if errors.Is(err, ErrResponseTooLarge) {
			return fmt.Errorf("%w: %d answer %w", ErrInvalidResponse, resp.StatusCode, err)
		}
		return &bodyError{err: err}
	}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return fmt.Errorf("%w: %d answer is not the expected JSON (%v): %q",
			ErrInvalidResponse, resp.StatusCode, jsonErrorText(err), excerpt(buf.Bytes()))
	}
	if v, ok := out.(validator); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("%w: %d answer %v: %q", ErrInvalidResponse, resp.StatusCode, err, excerpt(buf.Bytes()))
		}
	}
	return nil
}

// jsonErrorText keeps json's message short; a type error names the field.
func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q is a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

func putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 { // keep the pool from pinning large buffers
		bufPool.Put(buf)
	}
}

// errorBody is the union of the DCS and API gateway error shapes.
type errorBody struct {
	ErrorCode   string  `json:"error_code"`
	ErrorMsg    string  `json:"error_msg"`
	ErrorExtMsg *string `json:"error_ext_msg"`
	RequestID   string  `json:"request_id"`
	// Some gateways and proxies answer {"code": ..., "message": ...}.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// readDCSError reads a non-2xx answer, at most MaxErrorBytes of it, into a
// DCSError; readErr says why the body could not be read whole, if it could
// not (the DCSError then quotes what was read).
func readDCSError(resp *http.Response, op string) (e *DCSError, readErr error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	readErr = readLimited(buf, resp.Body, MaxErrorBytes)
	e = parseErrorBody(resp.StatusCode, buf.Bytes(), readErr == nil)
	e.Operation = op
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		e.RequestID = id
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 && e.ErrorCode == "" {
		e.ErrorMsg = http.StatusText(resp.StatusCode) + " (redirects are not followed)"
	}
	return e, readErr
}

// parseErrorBody maps an error body to a DCSError; complete says whether
// body is the whole body. It never fails: a body that is not an error JSON
// leaves an excerpt of itself, or the status text, in ErrorMsg.
func parseErrorBody(status int, body []byte, complete bool) *DCSError {
	e := &DCSError{StatusCode: status}
	var eb errorBody
	if complete && json.Unmarshal(body, &eb) == nil {
		e.ErrorCode, e.ErrorMsg, e.RequestID = eb.ErrorCode, eb.ErrorMsg, eb.RequestID
		if eb.ErrorExtMsg != nil {
			e.ErrorExtMsg = *eb.ErrorExtMsg
		}
		if e.ErrorCode == "" && e.ErrorMsg == "" {
			e.ErrorCode, e.ErrorMsg = eb.Code, eb.Message
		}
		if e.ErrorCode != "" || e.ErrorMsg != "" {
			return e
		}
	}
	if s := excerpt(body); s != "" {
		e.ErrorMsg = s
	} else {
		e.ErrorMsg = http.StatusText(status)
	}
	return e
}

// closeBody drains a little of what is left, so the connection can be
// reused, and closes the body. A body with more left than that is closed
// undrained: reading it all would be the unbounded read the limits prevent.
func closeBody(body io.ReadCloser) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_ = readLimited(buf, body, 4<<10-1)
	putBuf(buf)
	_ = body.Close()
}

func (c *Client) clockNow() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Client) sleepFor(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		return c.sleep(ctx, d)
	}
	return sleepContext(ctx, d)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) jitterFunc() func(int64) int64 {
	if c.jitter != nil {
		return c.jitter
	}
	return rand.Int63n
}

func (c *Client) logAttempt(ctx context.Context, cl *call, path string, attempt int, start time.Time, status int, requestID, code string, err error) {
	if c.logger == nil || !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("operation", cl.op),
		slog.String("method", cl.method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.String("request_id", requestID),
		slog.Int("attempt", attempt),
		slog.Duration("duration", time.Since(start)),
	}
	if code != "" {
		attrs = append(attrs, slog.String("error_code", code))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "dcsssl request", attrs...)
}

func (c *Client) logRetry(ctx context.Context, cl *call, path string, attempt int, wait time.Duration, err error) {
	if c.logger == nil {
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, "dcsssl retrying",
		slog.String("operation", cl.op),
		slog.String("method", cl.method),
		slog.String("path", path),
		slog.Int("attempt", attempt),
		slog.Duration("wait", wait),
		slog.String("error", err.Error()),
	)
}
