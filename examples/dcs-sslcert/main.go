// Command dcs-sslcert fetches the CA certificates of a DCS Redis instance's
// SSL and writes them to a file that redis-cli --tls --cacert and other TLS
// clients can use. It can turn SSL on first and check a TLS handshake with
// the certificates it wrote.
//
//	go run ./examples/dcs-sslcert -instance-id ID [-out ca.crt] [-enable] [-verify host:port] [-json] [-timeout 5m]
//	go run ./examples/dcs-sslcert -demo [-out ca.crt] [-json]
//
// Credentials, project and region come from the environment, as the
// official SDK reads them: HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK
// (HUAWEICLOUD_SDK_SECURITY_TOKEN too for temporary credentials),
// HUAWEICLOUD_SDK_PROJECT_ID and HUAWEICLOUD_SDK_REGION.
//
// -demo needs no account and no network: it runs the very same steps against
// dcstest, an in-process fake of DCS and OBS, and says so.
//
// Progress goes to stderr; the result goes to stdout, as text or, with
// -json, as one JSON object. The presigned download link is a bearer secret
// and is never printed.
//
// Exit codes: 0 success; 1 a step failed (an API error, the download, the
// write, the verification); 2 a usage or configuration error.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

const name = "dcs-sslcert"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// defaultTimeout bounds the whole run. Enabling SSL restarts the instance,
// which may take minutes on a real DCS.
const defaultTimeout = 5 * time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the command: it parses args, does the work and returns the exit
// code.
//
// getenv is consulted to tell the user which variables are missing before a
// client is built; the client itself is built by dcsssl.NewClientFromEnv,
// which reads the process environment. main passes os.Getenv, so both see
// the same variables.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runWith(ctx, args, stdout, stderr, getenv, hooks{newClient: dcsssl.NewClientFromEnv})
}

// hooks are what run takes from outside its arguments; tests replace them.
type hooks struct {
	// newClient builds the client of the real mode from the environment.
	newClient func(...dcsssl.Option) (*dcsssl.Client, error)
	// demoStarted, when not nil, is called with the fake instance of -demo
	// once it exists.
	demoStarted func(*dcstest.Instance)
}

// options are the command's flags.
type options struct {
	instanceID string
	out        string
	enable     bool
	verify     string
	json       bool
	timeout    time.Duration
	demo       bool
}

// errFlagsReported is a flag the flag package refused and has reported.
var errFlagsReported = errors.New("bad flags")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.instanceID, "instance-id", "", "the DCS instance `ID` (required unless -demo)")
	fs.StringVar(&o.out, "out", "ca.crt", "the `file` to write the CA certificates to, PEM, mode 0644")
	fs.BoolVar(&o.enable, "enable", false, "turn SSL on first when it is off, and wait for it (the instance restarts)")
	fs.StringVar(&o.verify, "verify", "", "dial `host:port` and check its TLS handshake against the certificates and the instance's TLS name")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "how long the whole run may take")
	fs.BoolVar(&o.demo, "demo", false, "run the whole flow (-enable included) against a built-in fake DCS: no account, no network")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s -instance-id ID [-out ca.crt] [-enable] [-verify host:port] [-json] [-timeout 5m]\n", name)
		fmt.Fprintf(fs.Output(), "       %s -demo [-out ca.crt] [-json]\n\n", name)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nCredentials come from %s, %s, %s and %s.\n",
			dcsssl.EnvAccessKey, dcsssl.EnvSecretKey, dcsssl.EnvProjectID, dcsssl.EnvRegion)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package has printed the error and the usage.
		return nil, errFlagsReported
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.instanceID == "" && !o.demo:
		return nil, errors.New("-instance-id is required (or try -demo)")
	case o.out == "":
		return nil, errors.New("-out must name a file")
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v is not positive", o.timeout)
	}
	if o.verify != "" {
		if host, port, err := net.SplitHostPort(o.verify); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("-verify %q is not host:port", o.verify)
		}
	}
	return &o, nil
}

func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, h hooks) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, errFlagsReported) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nrun %s -h for usage\n", name, err, name)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, name+": "+format+"\n", args...)
	}

	var res *result
	if o.demo {
		res, err = runDemo(ctx, o, logf, h.demoStarted)
	} else {
		if missing := missingEnv(getenv); len(missing) > 0 {
			fmt.Fprintf(stderr, "%s: %s not set.\n%s\n", name, strings.Join(missing, ", "), credentialsHint)
			return exitUsage
		}
		client, cerr := h.newClient()
		if cerr != nil {
			fmt.Fprintf(stderr, "%s: %v\n%s\n", name, cerr, credentialsHint)
			return exitUsage
		}
		res, err = sslcert(ctx, client, job{
			instanceID: o.instanceID,
			out:        o.out,
			enable:     o.enable,
			verifyAddr: o.verify,
		}, logf)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		if hint := errorHint(err); hint != "" {
			fmt.Fprintf(stderr, "%s: %s\n", name, hint)
		}
		return exitFail
	}
	if err := printResult(stdout, res, o.json); err != nil {
		fmt.Fprintf(stderr, "%s: writing the result: %v\n", name, err)
		return exitFail
	}
	if res.Verified != nil && !*res.Verified {
		fmt.Fprintf(stderr, "%s: verification of %s failed: %s\n", name, res.VerifyAddress, res.VerifyError)
		return exitFail
	}
	return exitOK
}

const credentialsHint = "Set " + dcsssl.EnvAccessKey + ", " + dcsssl.EnvSecretKey + ", " + dcsssl.EnvProjectID +
	" and " + dcsssl.EnvRegion + " (and " + dcsssl.EnvSecurityToken + " for temporary credentials),\n" +
	"or run with -demo to try the whole flow against a built-in fake DCS, with no account and no network."

// missingEnv returns the variables the real mode needs that are not set.
// An access key is not needed when the credentials come from the ECS
// metadata service.
func missingEnv(getenv func(string) string) []string {
	need := []string{dcsssl.EnvAccessKey, dcsssl.EnvSecretKey, dcsssl.EnvProjectID, dcsssl.EnvRegion}
	if getenv(dcsssl.EnvAccessKey) == "" && strings.EqualFold(getenv(dcsssl.EnvCredentialType), "metadata") {
		need = []string{dcsssl.EnvProjectID, dcsssl.EnvRegion}
	}
	var missing []string
	for _, v := range need {
		if getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	return missing
}

// errorHint says what to do about the errors a user can act on.
func errorHint(err error) string {
	switch {
	case errors.Is(err, dcsssl.ErrSSLNotSupported):
		return "only DCS Redis 6.0 and 7.0 basic edition instances support SSL"
	case errors.Is(err, dcsssl.ErrUnauthorized):
		return "check the credentials before trying again: an access key refused five times in a row is locked for five minutes"
	case errors.Is(err, dcsssl.ErrNotFound):
		return "check -instance-id, and that " + dcsssl.EnvProjectID + " and " + dcsssl.EnvRegion + " are those of the instance"
	case errors.Is(err, dcsssl.ErrLinkExpired):
		return "the download link expired before it was fetched: run again for a new one"
	}
	return ""
}

// result is what a run found and did; with -json it is printed as is.
type result struct {
	File          string            `json:"file"`
	Certificates  []certificateInfo `json:"certificates"`
	DomainName    string            `json:"domain_name"`
	Port          int               `json:"port"`
	SSLEnabled    bool              `json:"ssl_enabled"`
	Verified      *bool             `json:"verified,omitempty"`
	VerifyAddress string            `json:"verify_address,omitempty"`
	VerifyError   string            `json:"verify_error,omitempty"`
	TLSVersion    string            `json:"tls_version,omitempty"`
	Demo          bool              `json:"demo"`
}

type certificateInfo struct {
	Subject  string `json:"subject"`
	Issuer   string `json:"issuer"`
	NotAfter string `json:"not_after"` // RFC 3339, UTC
}

func describeCertificate(c *x509.Certificate) certificateInfo {
	return certificateInfo{
		Subject:  c.Subject.String(),
		Issuer:   c.Issuer.String(),
		NotAfter: c.NotAfter.UTC().Format(time.RFC3339),
	}
}

func printResult(w io.Writer, r *result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	var b strings.Builder
	noun := "CA certificates"
	if len(r.Certificates) == 1 {
		noun = "CA certificate"
	}
	fmt.Fprintf(&b, "wrote %s: %d %s\n", r.File, len(r.Certificates), noun)
	for _, c := range r.Certificates {
		fmt.Fprintf(&b, "  subject:   %s\n  issuer:    %s\n  not after: %s\n", c.Subject, c.Issuer, c.NotAfter)
	}
	state := "on"
	if !r.SSLEnabled {
		state = "off"
	}
	fmt.Fprintf(&b, "instance TLS name: %s, port %d (SSL %s)\n", r.DomainName, r.Port, state)
	if r.Verified != nil {
		if *r.Verified {
			fmt.Fprintf(&b, "verified: %s presented a certificate for %s that chains to %s (%s)\n",
				r.VerifyAddress, r.DomainName, r.File, r.TLSVersion)
		} else {
			fmt.Fprintf(&b, "NOT verified: %s: %s\n", r.VerifyAddress, r.VerifyError)
		}
	}
	if r.Demo {
		b.WriteString("demo: all of this came from the built-in fake DCS, not a real instance\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
