package dcstest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcsssl/dcsssl"
)

// Defaults of the Server options.
const (
	DefaultLinkTTL       = 5 * time.Minute       // WithLinkTTL
	DefaultRestartDelay  = time.Duration(0)      // WithRestartDelay
	DefaultRestartStatus = http.StatusBadGateway // WithRestartStatus
	DefaultBucket        = "dcs-ssl-certs"       // WithBucket
	DefaultLockoutLimit  = 5                     // WithLockout
	DefaultLockoutPeriod = 5 * time.Minute       // WithLockout
	DefaultSeed          = 1                     // WithSeed
)

// Formats and limits of the service that the server keeps to.
const (
	// SDKDateLayout is the layout of X-Sdk-Date.
	SDKDateLayout = "20060102T150405Z"
	// MaxClockSkew is how far X-Sdk-Date may be from the server's clock.
	MaxClockSkew = 15 * time.Minute
	// ExpiredAtLayout is the layout of ssl_expired_at, in UTC.
	ExpiredAtLayout = "2006-01-02 15:04:05"
	// MetadataExpiryLayout is the layout of the expires_at the metadata
	// fake sends, in UTC.
	MetadataExpiryLayout = "2006-01-02T15:04:05Z"
	// MaxRequestBody is the largest API request body; a larger one answers
	// 413 APIGW.0201.
	MaxRequestBody = 1 << 20
)

// Server is a fake of the DCS SSL APIs of one project and of the OBS bucket
// that serves the certificate packages, on an HTTPS loopback listener.
// Create it with NewServer and Close it when done.
type Server struct {
	// URL is the base URL, https://127.0.0.1:port, for dcsssl.WithEndpoint.
	URL string
	// ProjectID is the only project the server knows.
	ProjectID string
	// Credentials is a permanent AK/SK pair the server accepts.
	Credentials dcsssl.Credentials

	ts        *httptest.Server
	done      chan struct{} // closed by Close: ends injected delays
	closeOnce sync.Once
	conns     atomic.Int64

	now           func() time.Time
	linkTTL       time.Duration
	restartDelay  time.Duration
	restartStatus int
	bucket        string
	obsKey        string
	obsSecret     []byte
	lockoutLimit  int
	lockoutPeriod time.Duration
	seed          uint64

	mu        sync.Mutex
	instances map[string]*Instance
	keys      map[string]*accessKey
	faults    []*faultState
	requests  []*RecordedRequest
	seq       int
	rng       *mrand.Rand
}

// accessKey is an access key the server accepts.
type accessKey struct {
	secret   string
	token    string    // temporary credentials only
	expires  time.Time // zero: never
	failures int       // consecutive authentication failures
	locked   time.Time // refused until then
}

// Option configures a Server in NewServer.
type Option func(*Server)

// WithClock makes the server read the time from now, for every decision:
// X-Sdk-Date skew, link and credential expiry, the restart window, records.
// The default is time.Now. See ManualClock.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// WithProjectID sets the project ID; the default is 32 random hex digits.
func WithProjectID(id string) Option {
	return func(s *Server) { s.ProjectID = id }
}

// WithCredentials sets the permanent credentials of Server.Credentials
// instead of random ones. A SecurityToken or Expires in c makes them
// temporary credentials.
func WithCredentials(c dcsssl.Credentials) Option {
	return func(s *Server) { s.Credentials = c }
}

// WithLinkTTL sets how long a download link is valid; the default is
// DefaultLinkTTL. The link's Expires is truncated to the second.
func WithLinkTTL(d time.Duration) Option {
	return func(s *Server) { s.linkTTL = d }
}

// WithRestartDelay sets how long an instance restarts after an SSL switch
// before the new state takes effect; the default, 0, makes it take effect at
// once. A switch during a restart replaces the pending one and starts the
// window again.
func WithRestartDelay(d time.Duration) Option {
	return func(s *Server) { s.restartDelay = d }
}

// WithRestartStatus sets what the status query answers while an instance
// restarts: a gateway error with this status (502, 503 and others answer
// APIGW.0202 "Backend unavailable", 504 answers APIGW.0203 "Backend
// timeout"). 0 makes the query answer 200 with the old state instead. The
// default is DefaultRestartStatus.
func WithRestartStatus(code int) Option {
	return func(s *Server) { s.restartStatus = code }
}

// WithBucket sets the OBS bucket name of the download links; the default is
// DefaultBucket.
func WithBucket(name string) Option {
	return func(s *Server) { s.bucket = name }
}

// WithLockout sets after how many consecutive authentication failures an
// access key is locked, and for how long; the defaults are
// DefaultLockoutLimit and DefaultLockoutPeriod, as the gateway does. A limit
// of 0 never locks.
func WithLockout(limit int, period time.Duration) Option {
	return func(s *Server) { s.lockoutLimit, s.lockoutPeriod = limit, period }
}

// WithSeed seeds the random source that decides which requests a Fault with
// a Rate hits, for reproducible tests; the default is DefaultSeed.
func WithSeed(seed uint64) Option {
	return func(s *Server) { s.seed = seed }
}

// NewServer starts and returns a fake DCS server. It panics when it cannot
// listen on loopback, as httptest.NewServer does.
func NewServer(opts ...Option) *Server {
	s := &Server{
		done:          make(chan struct{}),
		now:           time.Now,
		linkTTL:       DefaultLinkTTL,
		restartDelay:  DefaultRestartDelay,
		restartStatus: DefaultRestartStatus,
		bucket:        DefaultBucket,
		lockoutLimit:  DefaultLockoutLimit,
		lockoutPeriod: DefaultLockoutPeriod,
		seed:          DefaultSeed,
		instances:     make(map[string]*Instance),
		keys:          make(map[string]*accessKey),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.ProjectID == "" {
		s.ProjectID = randomHex(16)
	}
	if s.Credentials.AccessKey == "" || s.Credentials.SecretKey == "" {
		s.Credentials = dcsssl.Credentials{AccessKey: randomKey(20), SecretKey: randomKey(40)}
	}
	s.addKey(s.Credentials)
	s.obsKey = randomKey(20)
	s.obsSecret = []byte(randomKey(40))
	s.rng = mrand.New(mrand.NewPCG(s.seed, s.seed^0x9e3779b97f4a7c15))

	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	// Handshakes refused by clients that do not trust the server (tests of
	// a wrong CA) would otherwise be logged to stderr.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.ts.StartTLS()
	s.URL = s.ts.URL
	return s
}

// Client returns an HTTP client that trusts the server's certificate. It is
// the same client at every call, so its connections are reused; Close
// closes its idle connections.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Certificate returns the certificate the server's HTTPS listener serves.
func (s *Server) Certificate() *x509.Certificate { return s.ts.Certificate() }

// Close ends injected delays, shuts the server down and waits for the
// requests under way. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ts.Close()
	})
}

// ConnectionCount returns how many TCP connections the server has accepted
// since it started or since ResetRecords.
func (s *Server) ConnectionCount() int { return int(s.conns.Load()) }

// Now returns the server's time, from the clock given by WithClock.
func (s *Server) Now() time.Time { return s.now() }

// AddCredentials makes the server accept c as well: a permanent pair, or
// temporary credentials when c has a SecurityToken (which must then be sent)
// or an Expires (after which they are refused).
func (s *Server) AddCredentials(c dcsssl.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addKey(c)
}

func (s *Server) addKey(c dcsssl.Credentials) {
	s.keys[c.AccessKey] = &accessKey{secret: c.SecretKey, token: c.SecurityToken, expires: c.Expires}
}

// IssueTemporaryCredentials returns new temporary credentials, with a
// security token, that the server accepts until ttl from now by its clock.
// The expiry is truncated to the second, as the metadata service sends it.
func (s *Server) IssueTemporaryCredentials(ttl time.Duration) dcsssl.Credentials {
	c := dcsssl.Credentials{
		AccessKey:     randomKey(20),
		SecretKey:     randomKey(40),
		SecurityToken: "gQpjbi1ub3J0aC00" + randomKey(160),
		Expires:       s.now().Add(ttl).UTC().Truncate(time.Second),
	}
	s.AddCredentials(c)
	return c
}

// serveHTTP answers every request: it records it, routes it to the API or
// the bucket, and applies the injected faults around verification.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rid := randomHex(16)
	w.Header().Set("X-Request-Id", rid)
	rt := route(r, s.bucket)
	rec := s.record(r, rt, rid)
	sw := &statusWriter{ResponseWriter: w}
	defer func() { s.finish(rec, sw) }()

	if rt.op == "" {
		s.writeGatewayError(sw, rid, http.StatusNotFound, CodeAPINotFound,
			"The API does not exist or has not been published in the environment")
		return
	}
	body, tooLarge := readBody(r)
	s.setBody(rec, body)
	if s.applyFault(sw, r, rt, rec, true) {
		return
	}
	if rt.op == OpOBSDownload {
		s.serveObject(sw, r, rt, rec, rid)
		return
	}
	if tooLarge {
		s.writeGatewayError(sw, rid, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "Request entity too large")
		return
	}
	if refusal := s.verify(r, rt.project, body); refusal != nil {
		s.setRefusal(rec, refusal.reason)
		s.writeGatewayError(sw, rid, http.StatusUnauthorized, CodeAuthFailed, refusal.message)
		return
	}
	if s.applyFault(sw, r, rt, rec, false) {
		return
	}
	s.serveAPI(sw, rt, body, rid)
}

// readBody reads at most MaxRequestBody bytes of the request body.
func readBody(r *http.Request) (body []byte, tooLarge bool) {
	if r.Body == nil {
		return nil, false
	}
	body, _ = io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	if len(body) > MaxRequestBody {
		return body[:MaxRequestBody], true
	}
	return body, false
}

// statusWriter remembers the status answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("dcstest: " + err.Error())
	}
	return hex.EncodeToString(b)
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomKey returns n random upper-case letters and digits, the look of an
// access key.
func randomKey(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("dcstest: " + err.Error())
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, c := range b {
		sb.WriteByte(keyAlphabet[int(c)%len(keyAlphabet)])
	}
	return sb.String()
}

// Format prints the server's URL and project for every verb, never the
// secrets it holds (the keys it accepts, the bucket's signing key).
func (s *Server) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "dcstest.Server{URL: %s, ProjectID: %s}", s.URL, s.ProjectID)
}
