package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// EnvRequireRedis set to 1 makes a missing redis-server fail the test
// instead of skipping it; CI sets it.
const EnvRequireRedis = "DCSSSL_REQUIRE_REDIS"

// restartDelay is how long dcstest's instance restarts after SSL is turned
// on: long enough for WaitForSSL to poll through the restart window.
const restartDelay = 300 * time.Millisecond

// TestRun runs the whole SDK path against dcstest playing DCS and OBS and a
// real redis-server playing the instance's TLS endpoint, serving the server
// certificate dcstest generated for the instance.
func TestRun(t *testing.T) {
	bin := redisServerPath(t)
	tests := []struct {
		name       string
		sslEnabled bool // the instance's SSL state at the start
		otherCA    bool // the package's ca.crt is another CA
		wantSetSSL int
	}{
		{name: "SSL off: turned on, then PONG", wantSetSSL: 1},
		{name: "SSL on: PONG without a switch", sslEnabled: true},
		{name: "another CA in the package: handshake refused", otherCA: true, wantSetSSL: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dcstest.NewServer(dcstest.WithRestartDelay(restartDelay))
			t.Cleanup(s.Close)
			inst, addr := startInstance(t, bin, s, tt.sslEnabled)
			if tt.otherCA {
				other := s.AddInstance("dcs-other", dcstest.InstanceConfig{Version: "7.0"})
				inst.SetCABundle(other.CACertPEM())
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, newClient(t, s), inst.ID(), "", &out)
			t.Logf("output:\n%s", out.String())

			if tt.otherCA {
				t.Logf("error: %v", err)
				checkUnknownAuthority(t, err)
				if strings.Contains(out.String(), "PONG") {
					t.Error("output has a PONG from a server the bundle does not vouch for")
				}
			} else {
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				want := fmt.Sprintf("PONG from %s over TLS, verified as %s", addr, inst.DomainName())
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			checkSwitch(t, s, inst, tt.wantSetSSL)
		})
	}
}

// checkUnknownAuthority asserts that err is the TLS handshake refusing the
// server's certificate as signed by an unknown authority.
func checkUnknownAuthority(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("run succeeded with a bundle of another CA")
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v (%T) is not a *tls.CertificateVerificationError", err, err)
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("error %v is not an x509.UnknownAuthorityError", err)
	}
}

// checkSwitch asserts that SSL ended on, after want switches, and that a
// switch was waited for through the restart window rather than past it.
func checkSwitch(t *testing.T, s *dcstest.Server, inst *dcstest.Instance, want int) {
	t.Helper()
	if !inst.SSLEnabled() {
		t.Error("SSL is off at the end")
	}
	if got := len(s.RequestsFor(dcstest.OpSetSSL)); got != want {
		t.Errorf("SSL switched %d times, want %d", got, want)
	}
	if want == 0 {
		return
	}
	var restarting int
	for _, r := range s.RequestsFor(dcstest.OpGetSSL) {
		if r.Status == dcstest.DefaultRestartStatus {
			restarting++
		}
	}
	if restarting == 0 {
		t.Errorf("no status query met the restart (%d), so the wait was not tested", dcstest.DefaultRestartStatus)
	}
}

func newClient(t *testing.T, s *dcstest.Server) *dcsssl.Client {
	t.Helper()
	c, err := dcsssl.NewClient(s.ProjectID, s.Credentials,
		dcsssl.WithEndpoint(s.URL),
		dcsssl.WithHTTPClient(s.Client()),
		dcsssl.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// redisServerPath returns the redis-server to run, or skips the test when
// there is none, unless EnvRequireRedis says it must run.
func redisServerPath(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		return bin
	}
	if os.Getenv(EnvRequireRedis) == "1" {
		t.Fatalf("%s=1 but redis-server is not installed: %v", EnvRequireRedis, err)
	}
	t.Skipf("redis-server is not installed (%v); install it (apt-get install redis-server) to run this test", err)
	return ""
}

// startInstance adds an instance to s whose SSL status points at a
// redis-server it starts on a free loopback port, with the instance's
// server certificate and a password given to run through REDIS_PASSWORD.
// It returns the instance and the redis-server's address.
func startInstance(t *testing.T, bin string, s *dcstest.Server, sslEnabled bool) (*dcstest.Instance, string) {
	t.Helper()
	password := randomHex(t)
	t.Setenv(EnvRedisPassword, password)
	// The port is free when chosen but may be taken before redis-server
	// binds it: try another then.
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		inst := s.AddInstance("dcs-redis-tls", dcstest.InstanceConfig{
			Version:    "7.0",
			SSLEnabled: sslEnabled,
			IP:         "127.0.0.1",
			Port:       port,
		})
		err := startRedis(t, bin, inst, port, password)
		if err == nil {
			return inst, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startRedis runs redis-server serving TLS only, on port, with the
// instance's certificate, and waits until it completes a TLS handshake
// verified as the instance. The process is killed at the end of the test.
func startRedis(t *testing.T, bin string, inst *dcstest.Instance, port int, password string) error {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"ca.crt":     inst.CACertPEM(),
		"server.crt": inst.ServerCertPEM(),
		"server.key": inst.ServerKeyPEM(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", "0",
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
		"--tls-auth-clients", "no",
		"--requirepass", password,
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
	)
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	cfg := &tls.Config{RootCAs: inst.CertPool(), ServerName: inst.DomainName(), MinVersion: tls.VersionTLS12}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := handshake(addr, cfg)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited (%v) before serving TLS on %s:\n%s", waitErr, addr, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server does not serve TLS on %s: %v\n%s", addr, err, log.String())
		}
	}
}

// handshake dials addr and completes a TLS handshake.
func handshake(addr string, cfg *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// lockedBuffer collects the output of redis-server, written by the exec
// package's goroutines and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
