package dcstest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// A test points a client of this library at the fake and downloads an
// instance's CA bundle.
func Example() {
	srv := dcstest.NewServer()
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{Version: "6.0", SSLEnabled: true})

	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
	if err != nil {
		panic(err)
	}
	bundle, err := client.DownloadCABundle(context.Background(), "inst-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.FileName, string(bundle.PEM) == string(inst.CACertPEM()))
	for _, r := range srv.Requests() {
		fmt.Println(r.Op, r.Status, r.HasAuthorization())
	}
	// Output:
	// ca.crt true
	// download 200 true
	// obs_download 200 false
}

// Faults make the fake misbehave: here the status query answers 503 with a
// Retry-After once.
func ExampleServer_InjectFault() {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	srv.InjectFault(dcstest.OpGetSSL, dcstest.Fault{
		Times:  1,
		Status: http.StatusServiceUnavailable,
		Body:   `{"error_code":"APIGW.0202","error_msg":"Backend unavailable"}`,
		Header: http.Header{"Retry-After": {"1"}},
	})
	client, _ := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()), dcsssl.WithRetry(dcsssl.NoRetry))

	_, err := client.GetSSLStatus(context.Background(), "inst-1")
	var de *dcsssl.DCSError
	fmt.Println(errors.As(err, &de), de.StatusCode, de.ErrorCode)
	st, err := client.GetSSLStatus(context.Background(), "inst-1")
	fmt.Println(st.Enabled, err)
	// Output:
	// true 503 APIGW.0202
	// true <nil>
}

// A ManualClock moves time for the fake: past a restart, past a link's
// expiry.
func ExampleManualClock() {
	clock := dcstest.NewManualClock(time.Now())
	srv := dcstest.NewServer(dcstest.WithClock(clock.Now), dcstest.WithRestartDelay(30*time.Second))
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{})
	client, _ := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()), dcsssl.WithRetry(dcsssl.NoRetry))

	_, _ = client.SetSSL(context.Background(), "inst-1", true)
	fmt.Println(inst.Restarting(), inst.SSLEnabled())
	clock.Advance(30 * time.Second)
	fmt.Println(inst.Restarting(), inst.SSLEnabled())
	// Output:
	// true false
	// false true
}

// The metadata fake hands out temporary credentials the DCS fake accepts.
func ExampleNewMetadataServer() {
	srv := dcstest.NewServer()
	defer srv.Close()
	meta := dcstest.NewMetadataServer(srv, dcstest.WithCredentialTTL(time.Hour))
	defer meta.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})

	client, _ := dcsssl.NewClient(srv.ProjectID, dcsssl.Credentials{},
		dcsssl.WithCredentialsProvider(meta.Provider()),
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
	st, err := client.GetSSLStatus(context.Background(), "inst-1")
	fmt.Println(st.Enabled, err, meta.SecurityKeyRequests())
	// Output:
	// true <nil> 1
}
