package dcsssl

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits of what FetchCABundle and ParseCABundle accept. Past a limit the
// package is refused, never expanded.
const (
	MaxBundleBytes        = 1 << 20 // the downloaded package
	MaxBundleEntries      = 64      // entries in a zip or tar package
	MaxBundleUncompressed = 1 << 20 // all certificate entries, uncompressed
)

// ErrNoCertificate holds when a package has no usable CA certificate.
var ErrNoCertificate = errors.New("dcsssl: no CA certificate in package")

// CABundle is the CA certificates of an instance's SSL certificate package:
// what a client needs to verify the instance's server certificate.
type CABundle struct {
	FileName     string // the entry the certificates came from, e.g. "ca.crt"
	PEM          []byte // the certificates, PEM-encoded
	Certificates []*x509.Certificate
}

// CertPool returns a pool holding exactly the bundle's certificates.
func (b *CABundle) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range b.Certificates {
		pool.AddCert(c)
	}
	return pool
}

// TLSConfig returns a client TLS configuration that trusts exactly the
// bundle and verifies that the server is serverName (the instance's
// DomainName from GetSSLStatus), with TLS 1.2 at least.
func (b *CABundle) TLSConfig(serverName string) *tls.Config {
	return &tls.Config{
		RootCAs:    b.CertPool(),
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
}

// LinkExpiresAt returns when the presigned link expires, from its Expires
// query parameter (Unix seconds); ok is false when the link has none.
func (s *SSLCert) LinkExpiresAt() (t time.Time, ok bool) {
	if s == nil {
		return time.Time{}, false
	}
	u, err := url.Parse(s.Link)
	if err != nil {
		return time.Time{}, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil && len(q) == 0 {
		return time.Time{}, false
	}
	v := q.Get("Expires")
	if v == "" {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	// Year 1 to 9999: what time.Time formats and compares sanely.
	if err != nil || secs < -62135596800 || secs > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0).UTC(), true
}

// OBSError is an error answer of the object storage that serves the
// presigned link: an expired or tampered link, a missing object.
type OBSError struct {
	StatusCode int
	Code       string // "AccessDenied", "NoSuchKey", ...; empty when the body had none
	Message    string
	RequestID  string
}

func (e *OBSError) Error() string {
	s := fmt.Sprintf("dcsssl: fetch CA bundle: download link answered %d", e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrLinkExpired) hold for OBS's own verdict.
func (e *OBSError) Is(target error) bool {
	return target == ErrLinkExpired && e.StatusCode == http.StatusForbidden &&
		strings.Contains(strings.ToLower(e.Message), "expired")
}

type obsErrorBody struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
}

// linkClient returns a client for presigned links: the caller's transport
// and timeout, following at most 3 redirects and only to https.
func linkClient(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("stopped after 3 redirects")
		}
		if req.URL.Scheme != "https" {
			return fmt.Errorf("refusing redirect to a %s URL", req.URL.Scheme)
		}
		return nil
	}
	return &c
}

// FetchCABundle downloads the package that cert links to and returns its CA
// certificates. The link is fetched with the client's HTTP client but
// without the API's signature or token. A link that is not https, or that
// has expired, is refused before any request.
func (c *Client) FetchCABundle(ctx context.Context, cert *SSLCert) (*CABundle, error) {
	const op = "dcsssl: fetch CA bundle"
	if cert == nil || cert.Link == "" {
		return nil, fmt.Errorf("%s: %w: no link", op, ErrInvalidInput)
	}
	u, err := url.Parse(cert.Link)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: link is not a URL", op, ErrInvalidInput)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%s: %w: link %s is not an https URL", op, ErrInvalidInput, redactLink(cert.Link))
	}
	if exp, ok := cert.LinkExpiresAt(); ok {
		if now := c.clockNow(); !now.Before(exp) {
			return nil, fmt.Errorf("%s: %w at %s (%s ago); download the certificate again for a new link",
				op, ErrLinkExpired, exp.Format(time.RFC3339), now.Sub(exp).Round(time.Second))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	start := time.Now()
	resp, err := c.linkHC.Do(req)
	if err != nil {
		// url.Error's text holds the whole link, signature included.
		c.logLink(ctx, u, 0, start, stripURLError(err))
		return nil, fmt.Errorf("%s: GET %s: %w", op, redactLink(cert.Link), stripURLError(err))
	}
	defer closeBody(resp.Body)
	c.logLink(ctx, u, resp.StatusCode, start, nil)
	if resp.StatusCode != http.StatusOK {
		return nil, readOBSError(resp)
	}
	var buf bytes.Buffer
	if err := readLimited(&buf, resp.Body, MaxBundleBytes); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		// A body cut short by the context may read as a clean EOF.
		return nil, fmt.Errorf("%s: reading package: %w", op, err)
	}
	name := cert.FileName
	if name == "" {
		name = path.Base(u.Path)
	}
	b, err := ParseCABundle(name, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return b, nil
}

func readOBSError(resp *http.Response) error {
	var buf bytes.Buffer
	readErr := readLimited(&buf, resp.Body, MaxErrorBytes)
	e := &OBSError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Obs-Request-Id")}
	var body obsErrorBody
	if readErr == nil && xml.Unmarshal(buf.Bytes(), &body) == nil && (body.Code != "" || body.Message != "") {
		e.Code, e.Message = excerpt([]byte(body.Code)), excerpt([]byte(body.Message))
		if e.RequestID == "" {
			e.RequestID = excerpt([]byte(body.RequestID))
		}
	} else if s := excerpt(buf.Bytes()); s != "" {
		e.Message = s
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// DownloadCABundle asks for the instance's certificate link and fetches its
// CA certificates: DownloadSSLCert followed by FetchCABundle.
func (c *Client) DownloadCABundle(ctx context.Context, instanceID string) (*CABundle, error) {
	cert, err := c.DownloadSSLCert(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	return c.FetchCABundle(ctx, cert)
}

// ParseCABundle reads the CA certificates of a certificate package: a zip
// or a gzipped tar (every CERTIFICATE block of their .crt and .pem entries,
// ca.crt first), or PEM as it is. name is the package's file name, reported
// for PEM input. A package without certificates, with a block that does not
// parse, or with a certificate that is not a CA, is refused; so is one past
// the size and entry limits, before it is expanded.
func ParseCABundle(name string, data []byte) (*CABundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: package larger than %s", ErrResponseTooLarge, byteSize(MaxBundleBytes))
	}
	switch {
	case bytes.HasPrefix(data, []byte("PK")):
		return parseZipBundle(data)
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		return parseTarGzBundle(data)
	case bytes.Contains(data, []byte("-----BEGIN")):
		return parsePEMBundle(name, data)
	}
	return nil, fmt.Errorf("%w: package %q is neither a zip, a tar.gz nor PEM", ErrNoCertificate, excerpt([]byte(name)))
}

// errExpanded is the error of a package whose entries expand past the limit.
var errExpanded = fmt.Errorf("%w: package entries expand past %s", ErrResponseTooLarge, byteSize(MaxBundleUncompressed))

// isCertEntry says whether an entry of a package may hold certificates.
func isCertEntry(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".crt" || ext == ".pem"
}

func isCACrt(name string) bool { return strings.EqualFold(path.Base(name), "ca.crt") }

// packageEntry is a certificate entry read from a package.
type packageEntry struct {
	name string
	data []byte
}

// bundleFromEntries takes the certificates of the entries, ca.crt first.
func bundleFromEntries(kind string, entries []packageEntry) (*CABundle, error) {
	sort.SliceStable(entries, func(i, j int) bool {
		return isCACrt(entries[i].name) && !isCACrt(entries[j].name)
	})
	var all []byte
	var first string
	for _, e := range entries {
		if !bytes.Contains(e.data, []byte("-----BEGIN CERTIFICATE")) {
			continue
		}
		if first == "" {
			first = path.Base(e.name)
		}
		all = append(all, e.data...)
		all = append(all, '\n')
	}
	if first == "" {
		return nil, fmt.Errorf("%w: the %s has no .crt or .pem entry with a certificate", ErrNoCertificate, kind)
	}
	return parsePEMBundle(first, all)
}

func parseZipBundle(data []byte) (*CABundle, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: package is not a valid zip: %v", ErrNoCertificate, err)
	}
	if len(zr.File) > MaxBundleEntries {
		return nil, fmt.Errorf("%w: zip has %d entries, more than %d", ErrResponseTooLarge, len(zr.File), MaxBundleEntries)
	}
	var entries []packageEntry
	budget := int64(MaxBundleUncompressed)
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || !isCertEntry(f.Name) {
			continue
		}
		if f.UncompressedSize64 > uint64(budget) {
			return nil, errExpanded
		}
		content, err := readZipEntry(f, budget)
		if err != nil {
			return nil, err
		}
		budget -= int64(len(content))
		entries = append(entries, packageEntry{f.Name, content})
	}
	return bundleFromEntries("zip", entries)
}

// readZipEntry reads one entry, at most budget bytes whatever its header
// claims.
func readZipEntry(f *zip.File, budget int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: zip entry %q: %v", ErrNoCertificate, excerpt([]byte(f.Name)), err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := readLimited(&buf, rc, budget); err != nil {
		if errors.Is(err, ErrResponseTooLarge) {
			return nil, errExpanded
		}
		return nil, fmt.Errorf("%w: zip entry %q: %v", ErrNoCertificate, excerpt([]byte(f.Name)), err)
	}
	return buf.Bytes(), nil
}

// parseTarGzBundle reads a gzipped tar. The whole decompressed stream,
// headers included, counts against MaxBundleUncompressed: a bomb stops
// there.
func parseTarGzBundle(data []byte) (*CABundle, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: package is not a valid gzip: %v", ErrNoCertificate, err)
	}
	stream := &limitedStream{r: gz, left: MaxBundleUncompressed}
	tr := tar.NewReader(stream)
	var entries []packageEntry
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if stream.exceeded {
				return nil, errExpanded
			}
			return nil, fmt.Errorf("%w: package is not a valid tar.gz: %v", ErrNoCertificate, err)
		}
		if n >= MaxBundleEntries {
			return nil, fmt.Errorf("%w: tar has more than %d entries", ErrResponseTooLarge, MaxBundleEntries)
		}
		if hdr.Typeflag != tar.TypeReg || !isCertEntry(hdr.Name) {
			continue
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(tr); err != nil {
			if stream.exceeded {
				return nil, errExpanded
			}
			return nil, fmt.Errorf("%w: tar entry %q: %v", ErrNoCertificate, excerpt([]byte(hdr.Name)), err)
		}
		entries = append(entries, packageEntry{hdr.Name, buf.Bytes()})
	}
	return bundleFromEntries("tar.gz", entries)
}

// limitedStream reads at most left bytes of r and then fails, remembering
// that it did: unlike io.LimitReader, running out is an error, not an end.
type limitedStream struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (l *limitedStream) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// At the limit: only the end of the stream may follow.
		var probe [1]byte
		if n, err := l.r.Read(probe[:]); n == 0 && err != nil {
			return 0, err
		}
		l.exceeded = true
		return 0, errExpanded
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// parsePEMBundle takes every CERTIFICATE block of data; other blocks (a key
// shipped alongside, say) are left out.
func parsePEMBundle(name string, data []byte) (*CABundle, error) {
	b := &CABundle{FileName: name}
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PEM block %d of %q does not parse: %v", ErrNoCertificate, n, excerpt([]byte(name)), err)
		}
		if !cert.BasicConstraintsValid || !cert.IsCA {
			return nil, fmt.Errorf("%w: certificate %q in %q is not a CA certificate", ErrNoCertificate,
				excerpt([]byte(cert.Subject.String())), excerpt([]byte(name)))
		}
		b.Certificates = append(b.Certificates, cert)
		b.PEM = append(b.PEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	if len(b.Certificates) == 0 {
		return nil, fmt.Errorf("%w: %q has no CERTIFICATE block", ErrNoCertificate, excerpt([]byte(name)))
	}
	return b, nil
}

func (c *Client) logLink(ctx context.Context, u *url.URL, status int, start time.Time, err error) {
	cl := &call{op: "fetch CA bundle", method: http.MethodGet}
	// Host and path only: the query is the link's signature.
	c.logAttempt(ctx, cl, u.Host+u.EscapedPath(), 1, start, status, "", "", err)
}
