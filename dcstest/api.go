package dcstest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Operation names what a request asks for, for InjectFault and the records.
type Operation string

// The operations the server serves.
const (
	OpDownload    Operation = "download"     // POST .../ssl-certs/download
	OpGetSSL      Operation = "get_ssl"      // GET .../ssl
	OpSetSSL      Operation = "set_ssl"      // PUT .../ssl
	OpOBSDownload Operation = "obs_download" // GET of a download link
)

// routed is what the path and method of a request name.
type routed struct {
	op       Operation // "" when nothing is served there
	project  string
	instance string
	object   string // the object key, for OpOBSDownload
}

// route maps a request to an operation the way the gateway does: by method
// and path only, before any verification.
func route(r *http.Request, bucket string) routed {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/obs/"+bucket+"/"); ok {
		if r.Method != http.MethodGet {
			return routed{}
		}
		dir, _, _ := strings.Cut(rest, "/")
		id, _ := strings.CutPrefix(dir, "ssl-")
		return routed{op: OpOBSDownload, instance: id, object: rest}
	}
	seg := strings.Split(path, "/")
	// "", "v2", project, "instances", id, suffix...
	if len(seg) < 6 || seg[0] != "" || seg[1] != "v2" || seg[3] != "instances" || seg[2] == "" || seg[4] == "" {
		return routed{}
	}
	rt := routed{project: seg[2], instance: seg[4]}
	switch suffix := strings.Join(seg[5:], "/"); {
	case suffix == "ssl-certs/download" && r.Method == http.MethodPost:
		rt.op = OpDownload
	case suffix == "ssl" && r.Method == http.MethodGet:
		rt.op = OpGetSSL
	case suffix == "ssl" && r.Method == http.MethodPut:
		rt.op = OpSetSSL
	default:
		return routed{}
	}
	return rt
}

// Error codes the server answers: DCS's own, then the API gateway's.
const (
	CodeSSLNotSupported    = "DCS.4201"   // 400 "Do not support SSL."
	CodeInstanceNotFound   = "DCS.4010"   // 404 "The instance does not exist."
	CodeInvalidBody        = "DCS.4005"   // 400, a malformed switch body
	CodeAPINotFound        = "APIGW.0101" // 404, nothing served at that method and path
	CodeBodyTooLarge       = "APIGW.0201" // 413, a body past MaxRequestBody
	CodeBackendUnavailable = "APIGW.0202" // restart window, any status but 504
	CodeBackendTimeout     = "APIGW.0203" // restart window with 504
	CodeAuthFailed         = "APIGW.0301" // 401, any verification failure
)

// serveAPI answers a verified API request.
func (s *Server) serveAPI(w http.ResponseWriter, rt routed, body []byte, rid string) {
	inst := s.Instance(rt.instance)
	if inst == nil {
		writeDCSError(w, http.StatusNotFound, CodeInstanceNotFound, "The instance does not exist.")
		return
	}
	if !inst.supportsSSL() {
		writeDCSError(w, http.StatusBadRequest, CodeSSLNotSupported, "Do not support SSL.")
		return
	}
	switch rt.op {
	case OpDownload:
		s.serveDownload(w, inst)
	case OpGetSSL:
		s.serveGetSSL(w, inst, rid)
	case OpSetSSL:
		s.serveSetSSL(w, inst, body)
	}
}

type downloadAnswer struct {
	FileName   string `json:"file_name"`
	Link       string `json:"link"`
	BucketName string `json:"bucket_name"`
}

func (s *Server) serveDownload(w http.ResponseWriter, inst *Instance) {
	fileName := inst.fileName()
	object := "ssl-" + inst.id + "/" + fileName
	writeJSON(w, http.StatusOK, downloadAnswer{
		FileName:   fileName,
		Link:       s.presign(object, s.now().Add(s.linkTTL)),
		BucketName: s.bucket,
	})
}

type sslAnswer struct {
	Enabled      bool   `json:"enabled"`
	IP           string `json:"ip"`
	Port         string `json:"port"`
	DomainName   string `json:"domain_name"`
	SSLExpiredAt string `json:"ssl_expired_at"`
	SSLValidated bool   `json:"ssl_validated"`
}

func (s *Server) serveGetSSL(w http.ResponseWriter, inst *Instance, rid string) {
	enabled, restarting := inst.state(s.now())
	if restarting && s.restartStatus != 0 {
		code, msg := CodeBackendUnavailable, "Backend unavailable"
		if s.restartStatus == http.StatusGatewayTimeout {
			code, msg = CodeBackendTimeout, "Backend timeout"
		}
		s.writeGatewayError(w, rid, s.restartStatus, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, sslAnswer{
		Enabled:      enabled,
		IP:           inst.ip,
		Port:         strconv.Itoa(inst.port),
		DomainName:   inst.domain,
		SSLExpiredAt: inst.cert.Leaf.NotAfter.UTC().Format(ExpiredAtLayout),
		SSLValidated: enabled,
	})
}

type setSSLBody struct {
	Enabled *bool `json:"enabled"`
}

type jobAnswer struct {
	JobID      string `json:"job_id"`
	InstanceID string `json:"instance_id"`
	Result     string `json:"result"`
}

func (s *Server) serveSetSSL(w http.ResponseWriter, inst *Instance, body []byte) {
	var b setSSLBody
	if err := json.Unmarshal(body, &b); err != nil || b.Enabled == nil {
		writeDCSError(w, http.StatusBadRequest, CodeInvalidBody,
			"The message body contains invalid characters or is not in JSON format.")
		return
	}
	job := inst.switchSSL(*b.Enabled, s.now().Add(s.restartDelay))
	writeJSON(w, http.StatusOK, jobAnswer{JobID: job, InstanceID: inst.id, Result: "success"})
}

// dcsError is the DCS error shape.
type dcsError struct {
	ErrorCode   string  `json:"error_code"`
	ErrorMsg    string  `json:"error_msg"`
	ErrorExtMsg *string `json:"error_ext_msg"`
}

// gatewayError is the API gateway error shape.
type gatewayError struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	RequestID string `json:"request_id"`
}

func writeDCSError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, dcsError{ErrorCode: code, ErrorMsg: msg})
}

func (s *Server) writeGatewayError(w http.ResponseWriter, rid string, status int, code, msg string) {
	writeJSON(w, status, gatewayError{ErrorCode: code, ErrorMsg: msg, RequestID: rid})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// escapePath escapes an object key segment by segment for a link.
func escapePath(key string) string {
	seg := strings.Split(key, "/")
	for i, s := range seg {
		seg[i] = url.PathEscape(s)
	}
	return strings.Join(seg, "/")
}
