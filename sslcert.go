package dcsssl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// SSLCert is the answer of the download API: where the instance's SSL
// certificate package can be fetched. Link is a presigned URL, a bearer
// secret until it expires: String and GoString leave out its query.
type SSLCert struct {
	FileName   string `json:"file_name"`
	Link       string `json:"link"`
	BucketName string `json:"bucket_name"`
}

func (s *SSLCert) validate() error {
	if s.Link == "" {
		return errors.New("has no link")
	}
	return nil
}

// String shows the certificate without the link's query (its signature).
func (s SSLCert) String() string {
	return "dcsssl.SSLCert{FileName: " + strconv.Quote(s.FileName) + ", Link: " + strconv.Quote(redactLink(s.Link)) +
		", BucketName: " + strconv.Quote(s.BucketName) + "}"
}

// Format prints String for every verb: none shows the link's signature.
func (s SSLCert) Format(f fmt.State, verb rune) { formatRedacted(f, s.String()) }

// redactLink drops the query, fragment and user information of a
// presigned link: the query carries its signature and access key.
func redactLink(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return "[unparseable link]"
	}
	s := u.EscapedPath()
	if u.Opaque != "" {
		s = u.Opaque
	}
	if u.Host != "" {
		s = "//" + u.Host + s
	}
	if u.Scheme != "" {
		s = u.Scheme + ":" + s
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?[redacted]"
	}
	return s
}

// DownloadSSLCert asks for the download link of the instance's SSL
// certificate package. Only DCS Redis 6.0/7.0 instances support SSL; others
// answer an error for which errors.Is(err, ErrSSLNotSupported) holds.
func (c *Client) DownloadSSLCert(ctx context.Context, instanceID string) (*SSLCert, error) {
	var cert SSLCert
	err := c.do(ctx, &call{
		op:         "download SSL cert",
		method:     http.MethodPost,
		instanceID: instanceID,
		suffix:     "ssl-certs/download",
		// The download only hands out a link: asking twice is harmless.
		idempotent: true,
	}, &cert)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}
