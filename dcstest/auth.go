package dcstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/dcsssl/dcsssl"
)

// Messages of the gateway's 401 answers (all with code APIGW.0301).
const (
	MsgSignatureFailed = "Incorrect IAM authentication information: verify aksk signature fail"
	MsgDateExpired     = "Incorrect IAM authentication information: x-sdk-date expired"
	MsgTokenExpired    = "Incorrect IAM authentication information: the security token has expired"
	MsgAKLocked        = "Incorrect IAM authentication information: AK access failed to reach the limit,forbidden."
)

const sdkAlgorithm = "SDK-HMAC-SHA256"

// refusal is why verification failed: reason for the records, message for
// the answer.
type refusal struct {
	reason  string
	message string
}

func refuse(reason string) *refusal { return &refusal{reason: reason, message: MsgSignatureFailed} }

// verify checks a request's credentials and signature as the gateway does.
// A failure of a known access key counts toward its lockout.
func (s *Server) verify(r *http.Request, project string, body []byte) *refusal {
	auth, ok := parseAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return refuse("Authorization header missing or malformed")
	}
	now := s.now()
	s.mu.Lock()
	key := s.keys[auth.access]
	var k accessKey
	if key != nil {
		k = *key
	}
	s.mu.Unlock()
	if key == nil {
		return refuse("unknown access key")
	}
	if now.Before(k.locked) {
		return &refusal{reason: "access key locked after repeated failures", message: MsgAKLocked}
	}
	ref := s.check(r, project, body, auth, &k, now)
	s.countOutcome(auth.access, ref == nil, now)
	return ref
}

// check is verify's checks of a known, unlocked key.
func (s *Server) check(r *http.Request, project string, body []byte, auth authorization, k *accessKey, now time.Time) *refusal {
	for _, h := range []string{"x-sdk-date", "x-project-id"} {
		if !auth.signs(h) {
			return refuse(h + " is not a signed header")
		}
	}
	rawDate := r.Header.Get("X-Sdk-Date")
	date, err := time.Parse(SDKDateLayout, rawDate)
	if err != nil {
		return refuse("X-Sdk-Date is missing or not in " + SDKDateLayout)
	}
	if d := now.Sub(date); d > MaxClockSkew || d < -MaxClockSkew {
		return &refusal{reason: "X-Sdk-Date is more than 15 minutes from the server's clock", message: MsgDateExpired}
	}
	if !k.expires.IsZero() && !now.Before(k.expires) {
		return &refusal{reason: "temporary credentials expired", message: MsgTokenExpired}
	}
	token := r.Header.Get("X-Security-Token")
	switch {
	case k.token == "" && token != "":
		return refuse("X-Security-Token sent with permanent credentials")
	case k.token != "" && token == "":
		return refuse("X-Security-Token missing for temporary credentials")
	case k.token != "" && !hmac.Equal([]byte(token), []byte(k.token)):
		return refuse("X-Security-Token does not match the access key")
	case k.token != "" && !auth.signs("x-security-token"):
		return refuse("x-security-token is not a signed header")
	}
	if got := r.Header.Get("X-Project-Id"); got != project {
		return refuse("X-Project-Id " + quote(got) + " does not match the project in the path")
	}
	if project != s.ProjectID {
		return refuse("project " + quote(project) + " is not the server's project")
	}
	want := Signature(k.secret, StringToSign(rawDate, CanonicalRequest(r, auth.signedHeaders, body)))
	got, err := hex.DecodeString(auth.signature)
	if err != nil || !hmac.Equal(want, got) {
		return refuse("signature does not match")
	}
	return nil
}

// countOutcome tracks consecutive failures of an access key and locks it
// past the limit.
func (s *Server) countOutcome(access string, ok bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.keys[access]
	if key == nil {
		return
	}
	if ok {
		key.failures = 0
		return
	}
	key.failures++
	if s.lockoutLimit > 0 && key.failures >= s.lockoutLimit {
		key.failures = 0
		key.locked = now.Add(s.lockoutPeriod)
	}
}

func quote(s string) string { return `"` + s + `"` }

// authorization is a parsed Authorization header.
type authorization struct {
	access        string
	signedHeaders []string
	signature     string
}

func (a authorization) signs(name string) bool {
	for _, h := range a.signedHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// parseAuthorization reads
// "SDK-HMAC-SHA256 Access=AK, SignedHeaders=h1;h2, Signature=hex".
func parseAuthorization(h string) (authorization, bool) {
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != sdkAlgorithm {
		return authorization{}, false
	}
	var a authorization
	var signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authorization{}, false
		}
		switch k {
		case "Access":
			a.access = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.signature = v
		default:
			return authorization{}, false
		}
	}
	if a.access == "" || signed == "" || a.signature == "" {
		return authorization{}, false
	}
	a.signedHeaders = strings.Split(signed, ";")
	for _, name := range a.signedHeaders {
		if name == "" {
			return authorization{}, false
		}
	}
	return a, true
}

// CanonicalRequest returns the SDK-HMAC-SHA256 canonical request of r as
// received, signing the headers named in signedHeaders (in that order) and
// body: METHOD, canonical URI (every path segment escaped, always ending in
// "/"), canonical query (sorted by key then value, escaped), canonical
// headers ("name:trimmed value\n" each; r.Host for "host"), the signed
// header names joined by ";", and hex(SHA-256(body)) — or the
// X-Sdk-Content-Sha256 value when that header is signed and is
// "UNSIGNED-PAYLOAD" — on lines of their own.
func CanonicalRequest(r *http.Request, signedHeaders []string, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	unsigned := false
	for _, name := range signedHeaders {
		lname := strings.ToLower(name)
		values := r.Header.Values(name)
		if lname == "host" {
			values = []string{r.Host}
		}
		if lname == "x-sdk-content-sha256" && r.Header.Get(name) == "UNSIGNED-PAYLOAD" {
			unsigned = true
		}
		values = append([]string(nil), values...)
		sort.Strings(values)
		for _, v := range values {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	if unsigned {
		b.WriteString("UNSIGNED-PAYLOAD")
	} else {
		sum := sha256.Sum256(body)
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}

// StringToSign returns "SDK-HMAC-SHA256\n" + sdkDate + "\n" +
// hex(SHA-256(canonicalRequest)).
func StringToSign(sdkDate, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return sdkAlgorithm + "\n" + sdkDate + "\n" + hex.EncodeToString(sum[:])
}

// Signature returns HMAC-SHA256(key=secretKey, stringToSign).
func Signature(secretKey, stringToSign string) []byte {
	m := hmac.New(sha256.New, []byte(secretKey))
	m.Write([]byte(stringToSign))
	return m.Sum(nil)
}

// canonicalURI escapes every segment of the path and ends it with "/".
func canonicalURI(u *url.URL) string {
	seg := strings.Split(u.EscapedPath(), "/")
	for i, s := range seg {
		if raw, err := url.PathUnescape(s); err == nil {
			s = raw
		}
		seg[i] = escape(s)
	}
	p := strings.Join(seg, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// canonicalQuery sorts the query by key, then value, escaping both.
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		values := append([]string(nil), q[k]...)
		sort.Strings(values)
		for _, v := range values {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// escape keeps A-Z a-z 0-9 _ - ~ . and writes every other byte as %XX.
func escape(s string) string {
	const upperHex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// SignRequest signs r for the gateway with c at t, as the official SDK
// does: it sets X-Sdk-Date, X-Project-Id (when project is not empty),
// X-Security-Token (for temporary credentials) and Authorization, signing
// every one of those headers. It is for tests that build requests by hand;
// body must be the bytes r sends.
func SignRequest(r *http.Request, body []byte, project string, c dcsssl.Credentials, t time.Time) {
	date := t.UTC().Format(SDKDateLayout)
	r.Header.Set("X-Sdk-Date", date)
	signed := []string{"x-sdk-date"}
	if project != "" {
		r.Header.Set("X-Project-Id", project)
		signed = append(signed, "x-project-id")
	}
	if c.SecurityToken != "" {
		r.Header.Set("X-Security-Token", c.SecurityToken)
		signed = append(signed, "x-security-token")
	}
	sort.Strings(signed)
	sig := Signature(c.SecretKey, StringToSign(date, CanonicalRequest(r, signed, body)))
	r.Header.Set("Authorization", sdkAlgorithm+" Access="+c.AccessKey+", SignedHeaders="+
		strings.Join(signed, ";")+", Signature="+hex.EncodeToString(sig))
}
