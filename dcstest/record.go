package dcstest

import (
	"net/http"
	"time"
)

// RecordedRequest is a request the server received, API or download link,
// and what it answered.
type RecordedRequest struct {
	Seq        int       // 1 for the first request since start or ResetRecords, then 2, ...
	Time       time.Time // arrival, by the server's clock
	Op         Operation // "" for a path or method nothing is served at
	InstanceID string
	Method     string
	Path       string // as received, escaped
	RawQuery   string
	Header     http.Header // as received; Host is in Header["Host"]
	Body       []byte
	RemoteAddr string // tells connections apart
	RequestID  string // the X-Request-Id answered

	Status  int    // the status answered; 0 while under way, or when no answer was written
	Refusal string // why verification refused the request; "" when it passed
	Fault   bool   // an injected fault hit the request
	Dropped bool   // the connection was closed without an answer
	Done    bool   // the server has finished with the request
}

// HasAuthorization reports whether the request carried an Authorization
// header (a download link must be fetched without one).
func (r RecordedRequest) HasAuthorization() bool {
	_, ok := r.Header["Authorization"]
	return ok
}

// Requests returns copies of the records of every request since the server
// started or since ResetRecords, in arrival order.
func (s *Server) Requests() []RecordedRequest {
	return s.requestsWhere(func(*RecordedRequest) bool { return true })
}

// RequestsFor returns the records of the requests of op, in arrival order.
func (s *Server) RequestsFor(op Operation) []RecordedRequest {
	return s.requestsWhere(func(r *RecordedRequest) bool { return r.Op == op })
}

func (s *Server) requestsWhere(keep func(*RecordedRequest) bool) []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedRequest, 0, len(s.requests))
	for _, r := range s.requests {
		if keep(r) {
			c := *r
			c.Header = r.Header.Clone()
			c.Body = append([]byte(nil), r.Body...)
			out = append(out, c)
		}
	}
	return out
}

// ResetRecords forgets the recorded requests and sets the connection count
// and sequence numbers back to zero.
func (s *Server) ResetRecords() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.seq = 0
	s.conns.Store(0)
}

// record starts the record of a request.
func (s *Server) record(r *http.Request, rt routed, rid string) *RecordedRequest {
	h := r.Header.Clone()
	h["Host"] = []string{r.Host}
	rec := &RecordedRequest{
		Time:       s.now(),
		Op:         rt.op,
		InstanceID: rt.instance,
		Method:     r.Method,
		Path:       r.URL.EscapedPath(),
		RawQuery:   r.URL.RawQuery,
		Header:     h,
		RemoteAddr: r.RemoteAddr,
		RequestID:  rid,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec.Seq = s.seq
	s.requests = append(s.requests, rec)
	return rec
}

// update changes a record under the lock.
func (s *Server) update(rec *RecordedRequest, f func(*RecordedRequest)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(rec)
}

func (s *Server) setBody(rec *RecordedRequest, body []byte) {
	s.update(rec, func(rec *RecordedRequest) { rec.Body = body })
}

func (s *Server) setRefusal(rec *RecordedRequest, reason string) {
	s.update(rec, func(rec *RecordedRequest) { rec.Refusal = reason })
}

func (s *Server) finish(rec *RecordedRequest, w *statusWriter) {
	s.update(rec, func(rec *RecordedRequest) {
		rec.Status = w.status
		rec.Done = true
	})
}
