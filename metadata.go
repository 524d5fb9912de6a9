package dcsssl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultMetadataEndpoint is the ECS metadata service's address.
const DefaultMetadataEndpoint = "http://169.254.169.254"

// Paths and headers of the ECS metadata protocol.
const (
	metadataTokenPath     = "/meta-data/latest/api/token"
	metadataKeyPath       = "/openstack/latest/securitykey"
	metadataTokenTTL      = "X-Metadata-Token-Ttl-Seconds"
	metadataTokenHdr      = "X-Metadata-Token"
	metadataMaxBytes      = 64 << 10
	metadataTimeout       = 5 * time.Second
	metadataTokenTTLValue = "21600"
)

// MetadataOption configures MetadataCredentials.
type MetadataOption func(*metadataProvider)

// WithMetadataEndpoint sets the metadata service's base URL; the default is
// DefaultMetadataEndpoint.
func WithMetadataEndpoint(u string) MetadataOption {
	return func(p *metadataProvider) { p.endpoint = strings.TrimRight(u, "/") }
}

// WithMetadataHTTPClient sets the HTTP client for the metadata service; the
// default has a 5-second timeout. Redirects are never followed.
func WithMetadataHTTPClient(hc *http.Client) MetadataOption {
	return func(p *metadataProvider) {
		if hc != nil {
			p.hc = hc
		}
	}
}

type metadataProvider struct {
	endpoint string
	hc       *http.Client
}

// MetadataCredentials returns a provider of the temporary credentials that
// the ECS metadata service hands to a cloud server with an agency bound to
// it. It speaks the protocol the official SDK speaks: a session token from
// PUT /meta-data/latest/api/token when the service grants one, then
// GET /openstack/latest/securitykey.
func MetadataCredentials(opts ...MetadataOption) CredentialsProvider {
	p := &metadataProvider{endpoint: DefaultMetadataEndpoint}
	for _, opt := range opts {
		opt(p)
	}
	hc := &http.Client{Timeout: metadataTimeout}
	if p.hc != nil {
		copied := *p.hc
		hc = &copied
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.hc = hc
	return p
}

// ErrNoAgency holds when the metadata service answers that no agency is
// bound to the server.
var ErrNoAgency = errors.New("dcsssl: no agency bound to this server: bind an agency (IAM agency for ECS) to the server to get temporary credentials from its metadata")

// metadataKey is the answer of the securitykey path, in both spellings
// seen.
type metadataKey struct {
	Credential struct {
		Access          string `json:"access"`
		Secret          string `json:"secret"`
		SecurityToken   string `json:"securitytoken"`
		ExpiresAt       string `json:"expires_at"`
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SecurityToken2  string `json:"securityToken"`
		Expiration      string `json:"expiration"`
	} `json:"credential"`
}

func (p *metadataProvider) Retrieve(ctx context.Context) (Credentials, error) {
	token, err := p.token(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.endpoint+metadataKeyPath, nil)
	if err != nil {
		return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: %w", err)
	}
	if token != "" {
		req.Header.Set(metadataTokenHdr, token)
	}
	body, status, err := p.send(req)
	if err != nil {
		return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: %w", err)
	}
	if status != http.StatusOK {
		if status == http.StatusUnauthorized && bytes.Contains(bytes.ToLower(body), []byte("agency")) {
			return Credentials{}, ErrNoAgency
		}
		return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: GET %s: %d %s", metadataKeyPath, status, excerpt(body))
	}
	var k metadataKey
	if err := json.Unmarshal(body, &k); err != nil {
		return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: answer is not JSON (%v)", jsonErrorText(err))
	}
	kc := k.Credential
	c := Credentials{
		AccessKey:     firstOf(kc.Access, kc.AccessKeyID),
		SecretKey:     firstOf(kc.Secret, kc.SecretAccessKey),
		SecurityToken: firstOf(kc.SecurityToken, kc.SecurityToken2),
	}
	if c.AccessKey == "" || c.SecretKey == "" || c.SecurityToken == "" {
		return Credentials{}, errors.New("dcsssl: metadata credentials: answer lacks access, secret or securitytoken")
	}
	if raw := firstOf(kc.ExpiresAt, kc.Expiration); raw != "" {
		t, ok := parseTimestamp(raw)
		if !ok {
			return Credentials{}, fmt.Errorf("dcsssl: metadata credentials: expires_at %q is not a time", excerpt([]byte(raw)))
		}
		c.Expires = t
	}
	return c, nil
}

// token asks for a session token; an empty token without error means the
// service does not issue them (404/405) and the key is asked for without.
func (p *metadataProvider) token(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.endpoint+metadataTokenPath, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(metadataTokenTTL, metadataTokenTTLValue)
	body, status, err := p.send(req)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusOK:
		return strings.TrimSpace(string(body)), nil
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return "", nil
	}
	return "", fmt.Errorf("PUT %s: %d %s", metadataTokenPath, status, excerpt(body))
}

func (p *metadataProvider) send(req *http.Request) ([]byte, int, error) {
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, stripURLError(err))
	}
	defer closeBody(resp.Body)
	var buf bytes.Buffer
	if err := readLimited(&buf, resp.Body, metadataMaxBytes); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return buf.Bytes(), resp.StatusCode, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
