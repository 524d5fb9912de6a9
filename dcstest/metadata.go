package dcstest

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/dcsssl/dcsssl"
)

// Defaults of the metadata options.
const (
	DefaultCredentialTTL = time.Hour // WithCredentialTTL
	MaxMetadataTokenTTL  = 21600     // seconds; X-Metadata-Token-Ttl-Seconds above it answers 400
)

// MsgNoAgency is what the metadata service answers, with 401, to a server
// without an agency.
const MsgNoAgency = "Please configure Cloud Service Agency first"

// MetadataServer is a fake of the ECS metadata service (plain HTTP on
// loopback, as the real one is http://169.254.169.254) that issues
// temporary credentials a Server accepts. Create it with NewMetadataServer
// and Close it when done.
//
// It speaks the protocol package dcsssl's MetadataCredentials speaks:
// PUT /meta-data/latest/api/token with X-Metadata-Token-Ttl-Seconds answers
// a session token; GET /openstack/latest/securitykey with that token in
// X-Metadata-Token answers new credentials at every call:
//
//	{"credential":{"access":…,"secret":…,"securitytoken":…,"expires_at":"2006-01-02T15:04:05Z"}}
type MetadataServer struct {
	// URL is the base URL, http://127.0.0.1:port, for
	// dcsssl.WithMetadataEndpoint.
	URL string

	dcs         *Server
	ts          *httptest.Server
	ttl         time.Duration
	altSpelling bool
	tokenStatus int // 0: session tokens supported

	mu            sync.Mutex
	noAgency      bool
	tokens        map[string]time.Time
	tokenRequests int
	keyRequests   int
	issued        []dcsssl.Credentials
}

// MetadataOption configures a MetadataServer in NewMetadataServer.
type MetadataOption func(*MetadataServer)

// WithCredentialTTL sets how long issued credentials are valid, by the DCS
// server's clock; the default is DefaultCredentialTTL.
func WithCredentialTTL(d time.Duration) MetadataOption {
	return func(m *MetadataServer) { m.ttl = d }
}

// WithAlternateSpelling makes the securitykey answer use the other field
// names seen in the wild:
// {"credential":{"accessKeyId","secretAccessKey","securityToken","expiration"}}.
func WithAlternateSpelling() MetadataOption {
	return func(m *MetadataServer) { m.altSpelling = true }
}

// WithoutSessionTokens makes the service grant no session token: the token
// path answers status (404 when 0; 405 is the other answer seen) and the
// securitykey path needs no token.
func WithoutSessionTokens(status int) MetadataOption {
	return func(m *MetadataServer) {
		if status == 0 {
			status = http.StatusNotFound
		}
		m.tokenStatus = status
	}
}

// WithNoAgency starts the service as on a server without an agency; see
// SetNoAgency.
func WithNoAgency() MetadataOption {
	return func(m *MetadataServer) { m.noAgency = true }
}

// NewMetadataServer starts a fake metadata service whose credentials dcs
// accepts. Close it before dcs.
func NewMetadataServer(dcs *Server, opts ...MetadataOption) *MetadataServer {
	m := &MetadataServer{dcs: dcs, ttl: DefaultCredentialTTL, tokens: make(map[string]time.Time)}
	for _, opt := range opts {
		opt(m)
	}
	m.ts = httptest.NewUnstartedServer(http.HandlerFunc(m.serveHTTP))
	m.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	m.ts.Start()
	m.URL = m.ts.URL
	return m
}

// Close shuts the service down. It may be called more than once.
func (m *MetadataServer) Close() { m.ts.Close() }

// Provider returns dcsssl.MetadataCredentials pointed at the service.
func (m *MetadataServer) Provider() dcsssl.CredentialsProvider {
	return dcsssl.MetadataCredentials(dcsssl.WithMetadataEndpoint(m.URL))
}

// SetNoAgency sets whether the service answers as on a server without an
// agency: the securitykey path answers 401 with a body holding MsgNoAgency.
func (m *MetadataServer) SetNoAgency(noAgency bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noAgency = noAgency
}

// SecurityKeyRequests returns how many securitykey requests arrived,
// answered or not.
func (m *MetadataServer) SecurityKeyRequests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keyRequests
}

// TokenRequests returns how many session token requests arrived.
func (m *MetadataServer) TokenRequests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenRequests
}

// Issued returns the credentials issued so far, oldest first.
func (m *MetadataServer) Issued() []dcsssl.Credentials {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]dcsssl.Credentials(nil), m.issued...)
}

const (
	metadataTokenPath = "/meta-data/latest/api/token"
	metadataKeyPath   = "/openstack/latest/securitykey"
)

func (m *MetadataServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", randomHex(16))
	switch {
	case r.URL.Path == metadataTokenPath && r.Method == http.MethodPut:
		m.serveToken(w, r)
	case r.URL.Path == metadataKeyPath && r.Method == http.MethodGet:
		m.serveKey(w, r)
	case r.URL.Path == metadataTokenPath || r.URL.Path == metadataKeyPath:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

func (m *MetadataServer) serveToken(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.tokenRequests++
	m.mu.Unlock()
	if m.tokenStatus != 0 {
		http.Error(w, http.StatusText(m.tokenStatus), m.tokenStatus)
		return
	}
	secs, err := strconv.Atoi(r.Header.Get("X-Metadata-Token-Ttl-Seconds"))
	if err != nil || secs < 1 || secs > MaxMetadataTokenTTL {
		http.Error(w, "X-Metadata-Token-Ttl-Seconds must be 1 to 21600", http.StatusBadRequest)
		return
	}
	token := randomKey(56)
	m.mu.Lock()
	m.tokens[token] = m.dcs.now().Add(time.Duration(secs) * time.Second)
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, token)
}

type metadataCredential struct {
	Access        string `json:"access,omitempty"`
	Secret        string `json:"secret,omitempty"`
	SecurityToken string `json:"securitytoken,omitempty"`
	ExpiresAt     string `json:"expires_at,omitempty"`

	AccessKeyID     string `json:"accessKeyId,omitempty"`
	SecretAccessKey string `json:"secretAccessKey,omitempty"`
	SecurityToken2  string `json:"securityToken,omitempty"`
	Expiration      string `json:"expiration,omitempty"`
}

func (m *MetadataServer) serveKey(w http.ResponseWriter, r *http.Request) {
	now := m.dcs.now()
	m.mu.Lock()
	m.keyRequests++
	noAgency := m.noAgency
	expires, known := m.tokens[r.Header.Get("X-Metadata-Token")]
	m.mu.Unlock()
	if m.tokenStatus == 0 && (!known || !now.Before(expires)) {
		http.Error(w, "Unauthorized: X-Metadata-Token is missing, wrong or expired", http.StatusUnauthorized)
		return
	}
	if noAgency {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error_code":"401","error_msg":"`+MsgNoAgency+`"}`)
		return
	}
	c := m.dcs.IssueTemporaryCredentials(m.ttl)
	m.mu.Lock()
	m.issued = append(m.issued, c)
	m.mu.Unlock()
	exp := c.Expires.UTC().Format(MetadataExpiryLayout)
	mc := metadataCredential{Access: c.AccessKey, Secret: c.SecretKey, SecurityToken: c.SecurityToken, ExpiresAt: exp}
	if m.altSpelling {
		mc = metadataCredential{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, SecurityToken2: c.SecurityToken, Expiration: exp}
	}
	b, err := json.Marshal(struct {
		Credential metadataCredential `json:"credential"`
	}{mc})
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Format prints the service's URL for every verb, never the credentials it
// issued.
func (m *MetadataServer) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "dcstest.MetadataServer{URL: %s}", m.URL)
}
