package dcstest

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// Fault is a misbehaviour injected into requests of one operation: an
// answer of its own, a delay, or a dropped connection.
//
// A fault applies after the request passed verification (the signature for
// API operations, the link's signature and expiry for OpOBSDownload), so
// that a test of faults also proves the request was signed right; set
// BeforeAuth to apply it first, as a proxy in front of the gateway would.
//
// In order: Delay, then DropConnection, then Status. A fault with neither
// DropConnection nor Status delays the service's own answer and adds Header
// to it.
type Fault struct {
	// Times is how many of the matching requests the fault hits, the next
	// ones first; 0 hits every one until ClearFaults.
	Times int
	// Rate, when in (0, 1), is the probability that a matching request is
	// hit, drawn from the server's seeded source (WithSeed); a request not
	// hit does not count toward Times. 0 hits every one.
	Rate float64
	// Instance restricts the fault to requests for that instance; "" hits
	// requests for any.
	Instance string
	// BeforeAuth applies the fault before the request is verified.
	BeforeAuth bool

	// Status, when not 0, is answered with Body and Header instead of the
	// service's answer.
	Status int
	// Body is the body answered with Status, as it is (JSON, HTML, plain
	// text, empty). Its Content-Type is JSON when it starts with '{' and
	// Header sets none; otherwise sniffed.
	Body string
	// Header is added to the answer (Status's or the service's), e.g.
	// Retry-After. A key with no values removes that header, e.g.
	// X-Request-Id.
	Header http.Header
	// Delay is waited, in real time, before answering (or dropping the
	// connection); the wait ends early, without an answer, when the client
	// goes away or the server closes.
	Delay time.Duration
	// DropConnection closes the connection without an answer. Note that
	// net/http's Transport sends a GET (or any request it can replay) again
	// by itself when a reused connection closes before any answer: a test
	// that wants the caller to see the failure uses a fresh connection or
	// a Times above 1.
	DropConnection bool
}

type faultState struct {
	op   Operation
	f    Fault
	hits int
}

// InjectFault adds a fault to the requests of op. Faults are tried in the
// order they were added; the first that matches a request hits it, and one
// whose Times are used up is removed.
func (s *Server) InjectFault(op Operation, f Fault) {
	f.Header = f.Header.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{op: op, f: f})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// nextFault picks the fault that hits a request, if any.
func (s *Server) nextFault(rt routed, beforeAuth bool) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, fs := range s.faults {
		f := &fs.f
		if fs.op != rt.op || f.BeforeAuth != beforeAuth || (f.Instance != "" && f.Instance != rt.instance) {
			continue
		}
		if f.Rate > 0 && f.Rate < 1 && s.rng.Float64() >= f.Rate {
			continue
		}
		fs.hits++
		if f.Times > 0 && fs.hits >= f.Times {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		hit := *f
		return &hit
	}
	return nil
}

// applyFault applies the fault that hits the request, if any, and reports
// whether it answered (or dropped) the request.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, rt routed, rec *RecordedRequest, beforeAuth bool) bool {
	f := s.nextFault(rt, beforeAuth)
	if f == nil {
		return false
	}
	s.update(rec, func(rec *RecordedRequest) { rec.Fault = true })
	if f.Delay > 0 && !s.wait(r, f.Delay) {
		return true
	}
	if f.DropConnection {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			// Not hijackable (HTTP/2): abort the stream instead.
			panic(http.ErrAbortHandler)
		}
		// Recorded before the close: the client may read the records as
		// soon as it sees the connection go.
		s.update(rec, func(rec *RecordedRequest) { rec.Dropped = true })
		_ = conn.Close()
		return true
	}
	for k, v := range f.Header {
		if len(v) == 0 {
			w.Header().Del(k)
			continue
		}
		w.Header()[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if f.Status == 0 {
		return false
	}
	if w.Header().Get("Content-Type") == "" && strings.HasPrefix(f.Body, "{") {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
	return true
}

// wait sleeps d and reports whether it did: false when the client went away
// or the server closed first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}
