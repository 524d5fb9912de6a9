package dcstest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// OBS error codes the download link answers, all with 403 but NoSuchKey
// (404).
const (
	OBSAccessDenied          = "AccessDenied"          // expired link, or a link without its query
	OBSSignatureDoesNotMatch = "SignatureDoesNotMatch" // a tampered link
	OBSInvalidAccessKeyID    = "InvalidAccessKeyId"    // a link with another AWSAccessKeyId
	OBSNoSuchKey             = "NoSuchKey"             // a removed instance
)

// presign returns the link to object, valid until expires, signed the way
// OBS signs query-string authenticated URLs (HMAC-SHA1 over method,
// expiry and resource, in base64).
func (s *Server) presign(object string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{}
	q.Set("AWSAccessKeyId", s.obsKey)
	q.Set("Expires", exp)
	q.Set("Signature", s.obsSignature(object, exp))
	return s.URL + "/obs/" + s.bucket + "/" + escapePath(object) + "?" + q.Encode()
}

func (s *Server) obsSignature(object, expires string) string {
	m := hmac.New(sha1.New, s.obsSecret)
	m.Write([]byte("GET\n\n\n" + expires + "\n/" + s.bucket + "/" + object))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// obsError is the XML error body of OBS.
type obsError struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

func writeOBSError(w http.ResponseWriter, rid string, status int, code, msg string) {
	b, err := xml.Marshal(obsError{Code: code, Message: msg, RequestID: rid, HostID: "dcstest"})
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	b = append([]byte(xml.Header), b...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// checkLink verifies a link's query as OBS does; it returns the status,
// code and message of the refusal, or 0. The signature covers the object
// and Expires; any query parameter besides the three signed ones is
// refused as a signature mismatch, so that any change to a link fails.
func (s *Server) checkLink(r *http.Request, object string) (status int, code, msg string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return http.StatusForbidden, OBSSignatureDoesNotMatch, "The request query does not parse."
	}
	ak, exp, sig := q["AWSAccessKeyId"], q["Expires"], q["Signature"]
	if len(ak) != 1 || len(exp) != 1 || len(sig) != 1 {
		return http.StatusForbidden, OBSAccessDenied, "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
	}
	if len(q) != 3 {
		return http.StatusForbidden, OBSSignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	}
	if ak[0] != s.obsKey {
		return http.StatusForbidden, OBSInvalidAccessKeyID, "The OBS access key Id you provided does not exist in our records."
	}
	secs, err := strconv.ParseInt(exp[0], 10, 64)
	if err != nil {
		return http.StatusForbidden, OBSAccessDenied, "Invalid date (should be seconds since epoch): " + exp[0]
	}
	if !s.now().Before(time.Unix(secs, 0)) {
		return http.StatusForbidden, OBSAccessDenied, "Request has expired"
	}
	if !hmac.Equal([]byte(sig[0]), []byte(s.obsSignature(object, exp[0]))) {
		return http.StatusForbidden, OBSSignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	}
	return 0, "", ""
}

// serveObject answers a GET of a download link. It never looks at the
// Authorization header: the link is its own credential.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, rt routed, rec *RecordedRequest, rid string) {
	w.Header().Set("X-Obs-Request-Id", rid)
	if status, code, msg := s.checkLink(r, rt.object); status != 0 {
		s.setRefusal(rec, code+": "+msg)
		writeOBSError(w, rid, status, code, msg)
		return
	}
	if s.applyFault(w, r, rt, rec, false) {
		return
	}
	inst := s.Instance(rt.instance)
	if inst == nil || rt.object != "ssl-"+inst.id+"/"+inst.fileName() {
		writeOBSError(w, rid, http.StatusNotFound, OBSNoSuchKey, "The specified key does not exist.")
		return
	}
	body := inst.Package()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
