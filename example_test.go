package dcsssl_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// The examples run against dcstest, the in-process fake of DCS, so that go
// test checks their output. Against the real service, leave out the
// endpoint and HTTP client options and give a region.

func ExampleNewClient() {
	srv := dcstest.NewServer()
	defer srv.Close()

	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), // or dcsssl.WithRegion("cn-north-4")
		dcsssl.WithHTTPClient(srv.Client()),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.ProjectID() == srv.ProjectID)

	_, err = dcsssl.NewClient(srv.ProjectID, dcsssl.Credentials{}, dcsssl.WithRegion("cn-north-4"))
	fmt.Println(err)
	// Output:
	// true
	// dcsssl: new client: credentials need an access key and a secret key
}

func ExampleClient_DownloadSSLCert() {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("inst-1", dcstest.InstanceConfig{Version: "6.0", SSLEnabled: true})
	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}

	cert, err := client.DownloadSSLCert(context.Background(), "inst-1")
	if err != nil {
		log.Fatal(err)
	}
	expires, _ := cert.LinkExpiresAt()
	fmt.Println(cert.FileName, cert.BucketName, expires.After(srv.Now()))
	// Output:
	// ssl-inst-1.zip dcs-ssl-certs true
}

func ExampleDCSError() {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("redis-5", dcstest.InstanceConfig{Version: "5.0"})
	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}

	_, err = client.DownloadSSLCert(context.Background(), "redis-5")
	if errors.Is(err, dcsssl.ErrSSLNotSupported) {
		fmt.Println("this instance has no SSL")
	}
	var apiErr *dcsssl.DCSError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.ErrorCode, apiErr.ErrorMsg, apiErr.RequestID != "")
	}

	_, err = client.DownloadSSLCert(context.Background(), "../other")
	fmt.Println(errors.Is(err, dcsssl.ErrInvalidInput))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = client.DownloadSSLCert(ctx, "redis-5")
	fmt.Println(errors.Is(err, context.Canceled))
	// Output:
	// this instance has no SSL
	// 400 DCS.4201 Do not support SSL. true
	// true
	// true
}

func ExampleClient_DownloadCABundle() {
	srv := dcstest.NewServer()
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{Version: "7.0", SSLEnabled: true})
	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	// The instance: a TLS server with the certificate DCS gave it.
	redis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{inst.ServerCertificate()}})
	if err != nil {
		log.Fatal(err)
	}
	defer redis.Close()
	go acceptHandshakes(redis)

	ctx := context.Background()
	status, err := client.GetSSLStatus(ctx, "inst-1")
	if err != nil {
		log.Fatal(err)
	}
	bundle, err := client.DownloadCABundle(ctx, "inst-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(bundle.FileName, len(bundle.Certificates), "CA certificate")

	// With go-redis: redis.NewClient(&redis.Options{Addr: ..., TLSConfig: cfg}).
	cfg := bundle.TLSConfig(status.DomainName)
	conn, err := tls.Dial("tcp", redis.Addr().String(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("verified", conn.ConnectionState().PeerCertificates[0].Subject.CommonName)
	// Output:
	// ca.crt 1 CA certificate
	// verified redis-inst-1.dcs.example.com
}

func acceptHandshakes(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}()
	}
}
