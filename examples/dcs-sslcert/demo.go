package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// The demo's fake instance and timings: a restart short enough to watch,
// long enough that the wait is real.
const (
	demoInstanceID   = "demo-instance"
	demoRestartDelay = 500 * time.Millisecond
	demoPollInterval = 100 * time.Millisecond
)

// runDemo starts the fake DCS with an instance whose SSL is off and a TLS
// listener standing in for the instance, and runs the same job as the real
// mode against them, SSL switch included.
func runDemo(ctx context.Context, o *options, logf func(string, ...any), started func(*dcstest.Instance)) (*result, error) {
	srv := dcstest.NewServer(dcstest.WithRestartDelay(demoRestartDelay))
	defer srv.Close()
	logf("demo: running against the built-in fake DCS (package dcstest, in this process at %s), not a real DCS: no account, no network", srv.URL)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: listen for the instance's TLS: %w", err)
	}
	id := o.instanceID
	if id == "" {
		id = demoInstanceID
	}
	inst := srv.AddInstance(id, dcstest.InstanceConfig{
		Version: "6.0",
		IP:      "127.0.0.1",
		Port:    ln.Addr().(*net.TCPAddr).Port,
	})
	if started != nil {
		started(inst)
	}
	stop := serveInstanceTLS(ln, inst)
	defer stop()

	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL),
		dcsssl.WithHTTPClient(srv.Client()),
		dcsssl.WithPollInterval(demoPollInterval))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	verifyAddr := o.verify
	if verifyAddr == "" {
		verifyAddr = ln.Addr().String()
	}
	res, err := sslcert(ctx, client, job{
		instanceID: id,
		out:        o.out,
		enable:     true,
		verifyAddr: verifyAddr,
	}, logf)
	if res != nil {
		res.Demo = true
	}
	return res, err
}

// serveInstanceTLS serves TLS on ln with the instance's server
// certificate, as the instance does while its SSL is on; while SSL is off
// it closes every connection. stop closes ln and waits for the
// connections.
func serveInstanceTLS(ln net.Listener, inst *dcstest.Instance) (stop func()) {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{inst.ServerCertificate()},
		MinVersion:   tls.VersionTLS12,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				if !inst.SSLEnabled() {
					return
				}
				_ = conn.SetDeadline(time.Now().Add(verifyTimeout))
				tc := tls.Server(conn, cfg)
				if tc.Handshake() != nil {
					return
				}
				// Hold the connection until the client is done with it.
				_, _ = io.Copy(io.Discard, tc)
			}()
		}
	}()
	return func() {
		_ = ln.Close()
		wg.Wait()
	}
}
