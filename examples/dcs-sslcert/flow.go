package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dcsssl/dcsssl"
)

// job is what one run does, the same in the real mode and in -demo.
type job struct {
	instanceID string
	out        string
	enable     bool   // turn SSL on first when it is off
	verifyAddr string // host:port to check a handshake with; "" for none
}

// verifyTimeout bounds the connection and handshake of -verify.
const verifyTimeout = 10 * time.Second

// sslcert asks for the instance's SSL state, turns SSL on if asked,
// downloads the CA certificates, writes them to j.out and checks a TLS
// handshake with them if asked. A failed verification is reported in the
// result, not as an error: the file was written by then.
func sslcert(ctx context.Context, client *dcsssl.Client, j job, logf func(string, ...any)) (*result, error) {
	// Before anything changes the instance: a typo in -out must not cost
	// a restart.
	if err := checkOut(j.out); err != nil {
		return nil, err
	}
	logf("checking SSL on instance %s…", j.instanceID)
	st, err := client.GetSSLStatus(ctx, j.instanceID)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Enabled && j.enable:
		logf("SSL is already on")
	case !st.Enabled && j.enable:
		if st, err = enableSSL(ctx, client, j.instanceID, logf); err != nil {
			return nil, err
		}
	case !st.Enabled:
		// A warning rather than a failure: the certificate can be had while
		// SSL is off, and getting it ready before the switch is a fair
		// reason to run this. Turning SSL on restarts the instance, which
		// only -enable may do.
		logf("warning: SSL is off on instance %s: no client can connect with TLS until it is on (-enable turns it on; the instance restarts)", j.instanceID)
	}

	logf("downloading the certificate package…")
	bundle, err := client.DownloadCABundle(ctx, j.instanceID)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(j.out, bundle.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", j.out, err)
	}
	logf("wrote %s", j.out)

	res := &result{
		File:       j.out,
		DomainName: st.DomainName,
		Port:       st.Port,
		SSLEnabled: st.Enabled,
	}
	for _, c := range bundle.Certificates {
		res.Certificates = append(res.Certificates, describeCertificate(c))
	}
	if j.verifyAddr != "" {
		verify(ctx, res, j.verifyAddr, bundle, logf)
	}
	return res, nil
}

// enableSSL turns SSL on and waits until the status says it is.
func enableSSL(ctx context.Context, client *dcsssl.Client, instanceID string, logf func(string, ...any)) (*dcsssl.SSLStatus, error) {
	logf("enabling SSL (the instance restarts: seconds of disconnection)…")
	j, err := client.SetSSL(ctx, instanceID, true)
	if err != nil {
		return nil, err
	}
	logf("waiting for the restart (job %s)…", j.JobID)
	start := time.Now()
	st, err := client.WaitForSSL(ctx, instanceID, true)
	if err != nil {
		return nil, fmt.Errorf("SSL was switched on (job %s) but is not on yet; run again without -enable once the restart is over: %w", j.JobID, err)
	}
	logf("SSL is on (after %s)", time.Since(start).Round(10*time.Millisecond))
	return st, nil
}

// verify dials addr with the bundle as the only roots and the instance's
// TLS name, and records in res whether the handshake verified.
func verify(ctx context.Context, res *result, addr string, bundle *dcsssl.CABundle, logf func(string, ...any)) {
	res.VerifyAddress = addr
	ok := false
	res.Verified = &ok
	if !res.SSLEnabled {
		// Dialing a plain-text Redis port with TLS would fail with an
		// error that hides the reason.
		res.VerifyError = "SSL is off on the instance (-enable turns it on)"
		return
	}
	serverName := res.DomainName
	if serverName == "" {
		host, _, _ := net.SplitHostPort(addr)
		serverName = host
		logf("warning: the instance reports no TLS name: checking the certificate against %s", host)
	}
	logf("verifying the TLS handshake of %s as %s…", addr, serverName)
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: verifyTimeout},
		Config:    bundle.TLSConfig(serverName),
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.VerifyError = err.Error()
		return
	}
	defer conn.Close()
	ok = true
	res.TLSVersion = tls.VersionName(conn.(*tls.Conn).ConnectionState().Version)
}

// checkOut refuses an -out whose directory does not exist or that is a
// directory itself.
func checkOut(out string) error {
	dir := filepath.Dir(out)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("-out %s: directory %s does not exist", out, dir)
	case err != nil:
		return fmt.Errorf("-out %s: %w", out, err)
	case !fi.IsDir():
		return fmt.Errorf("-out %s: %s is not a directory", out, dir)
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return fmt.Errorf("-out %s is a directory", out)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and then renamed over path: path holds either its old
// content or all of data, never part of it. On error the temporary file is
// removed and path is left as it was.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // a second Close only reports an error
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; CA certificates are public, and
	// Chmod, unlike create, is not cut by the umask.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable. It is best effort: the file is
// complete either way, and some systems cannot sync a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
