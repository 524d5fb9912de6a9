package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	dcs "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dcs/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dcs/v2/model"
)

// answer is the download API's 200 answer every client decodes.
const answer = `{"file_name":"ssl.zip","link":"` + link + `","bucket_name":"b"}`

const link = "https://b.obs.example.com:443/ssl-x/ssl.zip?AWSAccessKeyId=A&Expires=4102444800&Signature=S"

const (
	projectID    = "0123456789abcdef0123456789abcdef"
	instanceID   = "11111111-2222-3333-4444-555555555555"
	accessKey    = "AKEXAMPLE"
	secretKey    = "SKEXAMPLE"
	requestID    = "0123456789abcdef0123456789abcdef"
	cannedHost   = "https://dcs.cn-north-4.myhuaweicloud.com"
	downloadPath = "/v2/" + projectID + "/instances/" + instanceID + "/ssl-certs/download"
	workers      = 32
)

// cannedTransport answers every request with the fixed answer, a fresh body
// reader each time, without any network. A request that is not the signed
// download call gets a 401 or 404, so no benchmark can time a broken call.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	status, body := check(req)
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type": {"application/json"},
			"X-Request-Id": {requestID},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

var (
	answerBytes   = []byte(answer)
	unsignedError = []byte(`{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information"}`)
	notFoundError = []byte(`{"error_code":"APIGW.0101","error_msg":"The API does not exist or has not been published"}`)
)

// check is what both fake services verify of a request: the method, the
// path, the project header and that it is signed.
func check(req *http.Request) (int, []byte) {
	switch {
	case req.Method != http.MethodPost || req.URL.Path != downloadPath:
		return http.StatusNotFound, notFoundError
	case len(req.Header["Authorization"]) == 0 || len(req.Header["X-Sdk-Date"]) == 0:
		return http.StatusUnauthorized, unsignedError
	case len(req.Header["X-Project-Id"]) == 0 || req.Header["X-Project-Id"][0] != projectID:
		return http.StatusUnauthorized, unsignedError
	}
	return http.StatusOK, answerBytes
}

// newTLSServer starts a keep-alive loopback HTTPS server that answers like
// cannedTransport, and returns it with a client transport that keeps up to
// workers idle connections to it.
func newTLSServer(b *testing.B) (*httptest.Server, func() *http.Transport) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := check(r)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", requestID)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	transport := func() *http.Transport {
		t := srv.Client().Transport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = workers
		b.Cleanup(t.CloseIdleConnections)
		return t
	}
	return srv, transport
}

// caller makes one DownloadSSLCert call and checks its answer.
type caller func(ctx context.Context) error

// client builds one of the three clients on the given transport.
type client struct {
	name string
	new  func(endpoint string, rt http.RoundTripper) (caller, error)
}

var clients = []client{
	{"this", newThis},
	{"official", newOfficial},
	{"floor", newFloor},
}

func newThis(endpoint string, rt http.RoundTripper) (caller, error) {
	c, err := dcsssl.NewClient(projectID,
		dcsssl.Credentials{AccessKey: accessKey, SecretKey: secretKey},
		dcsssl.WithEndpoint(endpoint),
		dcsssl.WithHTTPClient(&http.Client{Transport: rt}))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		cert, err := c.DownloadSSLCert(ctx, instanceID)
		if err != nil {
			return err
		}
		return checkAnswer(cert.FileName, cert.Link, cert.BucketName)
	}, nil
}

// newOfficial builds the official DcsClient with a project ID, so that it
// never looks one up, and no region, so that it never reaches IAM.
func newOfficial(endpoint string, rt http.RoundTripper) (caller, error) {
	creds, err := basic.NewCredentialsBuilder().
		WithAk(accessKey).
		WithSk(secretKey).
		WithProjectId(projectID).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	httpConfig := config.DefaultHttpConfig().WithTimeout(0)
	if t, ok := rt.(*http.Transport); ok {
		httpConfig.WithHttpTransport(t)
	} else {
		httpConfig.WithHttpRoundTripper(rt)
	}
	hc, err := dcs.DcsClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(creds).
		WithHttpConfig(httpConfig).
		SafeBuild()
	if err != nil {
		return nil, err
	}
	c := dcs.NewDcsClient(hc)
	return func(context.Context) error {
		resp, err := c.DownloadSslCert(&model.DownloadSslCertRequest{InstanceId: instanceID})
		if err != nil {
			return err
		}
		if resp.FileName == nil || resp.Link == nil || resp.BucketName == nil {
			return fmt.Errorf("official: incomplete answer %v", resp)
		}
		return checkAnswer(*resp.FileName, *resp.Link, *resp.BucketName)
	}, nil
}

// floorAnswer is the download API's answer as the floor decodes it.
type floorAnswer struct {
	FileName   string `json:"file_name"`
	Link       string `json:"link"`
	BucketName string `json:"bucket_name"`
}

// newFloor is the least a client built on the official signer does: sign
// the POST with the signer, send it with net/http, decode the JSON.
func newFloor(endpoint string, rt http.RoundTripper) (caller, error) {
	hc := &http.Client{Transport: rt}
	url := endpoint + downloadPath
	return func(ctx context.Context) error {
		signed, err := signer.Sign(request.NewHttpRequestBuilder().
			WithEndpoint(endpoint).
			WithPath(downloadPath).
			WithMethod(http.MethodPost).
			AddHeaderParam("Content-Type", "application/json").
			AddHeaderParam("X-Project-Id", projectID).
			Build(), accessKey, secretKey)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Project-Id", projectID)
		req.Header.Set(signer.HeaderXDate, signed[signer.HeaderXDate])
		req.Header.Set(signer.HeaderAuthorization, signed[signer.HeaderAuthorization])
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("floor: %d %s", resp.StatusCode, body)
		}
		var out floorAnswer
		if err := json.Unmarshal(body, &out); err != nil {
			return err
		}
		return checkAnswer(out.FileName, out.Link, out.BucketName)
	}, nil
}

func checkAnswer(fileName, gotLink, bucket string) error {
	if fileName != "ssl.zip" || bucket != "b" || gotLink != link {
		return errors.New("answer decoded wrong")
	}
	return nil
}

// BenchmarkDownloadSSLCert times one call per op, client built beforehand.
func BenchmarkDownloadSSLCert(b *testing.B) {
	b.Run("canned", func(b *testing.B) {
		for _, cl := range clients {
			b.Run(cl.name, func(b *testing.B) {
				runSerial(b, cl, cannedHost, cannedTransport{})
			})
		}
	})
	b.Run("loopback-tls", func(b *testing.B) {
		srv, transport := newTLSServer(b)
		for _, cl := range clients {
			b.Run(cl.name, func(b *testing.B) {
				runSerial(b, cl, srv.URL, transport())
			})
		}
	})
}

func runSerial(b *testing.B, cl client, endpoint string, rt http.RoundTripper) {
	ctx := context.Background()
	call, err := cl.new(endpoint, rt)
	if err != nil {
		b.Fatal(err)
	}
	if err := call(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := startCPU(b)
	for range b.N {
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cpu.stop()
}

// cpuMeter reports the process CPU time per op as cpu-ns/op, beside the
// wall time of ns/op.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
	ok    bool
}

// startCPU resets the benchmark timer and starts measuring CPU time.
func startCPU(b *testing.B) *cpuMeter {
	m := &cpuMeter{b: b}
	b.ResetTimer()
	m.start, m.ok = processCPU()
	return m
}

// stop stops the benchmark timer and reports cpu-ns/op.
func (m *cpuMeter) stop() {
	end, ok := processCPU()
	m.b.StopTimer()
	if m.ok && ok && m.b.N > 0 {
		m.b.ReportMetric(float64(end-m.start)/float64(m.b.N), "cpu-ns/op")
	}
}

// BenchmarkConcurrent has 32 goroutines share one client against the
// loopback TLS server; calls/s is the throughput.
func BenchmarkConcurrent(b *testing.B) {
	srv, transport := newTLSServer(b)
	for _, cl := range clients {
		b.Run(cl.name, func(b *testing.B) {
			ctx := context.Background()
			call, err := cl.new(srv.URL, transport())
			if err != nil {
				b.Fatal(err)
			}
			// One call per goroutine first, to open the connections.
			if err := fanOut(ctx, workers, workers, call); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := startCPU(b)
			start := time.Now()
			err = fanOut(ctx, workers, b.N, call)
			elapsed := time.Since(start)
			cpu.stop()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}
}

// fanOut makes total calls from n goroutines and returns the first error.
func fanOut(ctx context.Context, n, total int, call caller) error {
	var turns atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for turns.Add(1) <= int64(total) {
				if err := call(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// BenchmarkColdStart times constructing a client and making its first call.
func BenchmarkColdStart(b *testing.B) {
	for _, cl := range clients[:2] {
		b.Run(cl.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			cpu := startCPU(b)
			for range b.N {
				call, err := cl.new(cannedHost, cannedTransport{})
				if err != nil {
					b.Fatal(err)
				}
				if err := call(ctx); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop()
		})
	}
}
