package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// invoke runs the command in process with the process environment and
// returns its exit code, stdout and stderr.
func invoke(t *testing.T, h hooks, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runWith(context.Background(), args, &out, &errOut, os.Getenv, h)
	return code, out.String(), errOut.String()
}

// realEnv points the real mode at srv through the environment, as a user
// would point it at DCS, and returns hooks whose client also trusts srv's
// certificate (the only thing the environment cannot say).
func realEnv(t *testing.T, srv *dcstest.Server) hooks {
	t.Helper()
	t.Setenv(dcsssl.EnvAccessKey, srv.Credentials.AccessKey)
	t.Setenv(dcsssl.EnvSecretKey, srv.Credentials.SecretKey)
	t.Setenv(dcsssl.EnvSecurityToken, "")
	t.Setenv(dcsssl.EnvCredentialType, "")
	t.Setenv(dcsssl.EnvProjectID, srv.ProjectID)
	t.Setenv(dcsssl.EnvRegion, "cn-north-4")
	t.Setenv(dcsssl.EnvEndpointPrefix+"CN_NORTH_4", srv.URL)
	return hooks{newClient: func(opts ...dcsssl.Option) (*dcsssl.Client, error) {
		return dcsssl.NewClientFromEnv(append(opts, dcsssl.WithHTTPClient(srv.Client()))...)
	}}
}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{dcsssl.EnvAccessKey, dcsssl.EnvSecretKey, dcsssl.EnvSecurityToken,
		dcsssl.EnvCredentialType, dcsssl.EnvProjectID, dcsssl.EnvRegion} {
		t.Setenv(v, "")
	}
}

// dirNames lists the names in dir: no temporary file may be left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func decodeResult(t *testing.T, stdout string) result {
	t.Helper()
	var r result
	require.NoError(t, json.Unmarshal([]byte(stdout), &r), "stdout: %s", stdout)
	return r
}

func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "ca.crt")
	var inst *dcstest.Instance
	h := hooks{demoStarted: func(i *dcstest.Instance) { inst = i }}

	code, stdout, stderr := invoke(t, h, "-demo", "-json", "-out", out)

	require.Equal(t, exitOK, code, "stderr: %s", stderr)
	require.NotNil(t, inst)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	assert.Equal(t, []string{"ca.crt"}, dirNames(t, dir))

	data, err := os.ReadFile(out)
	require.NoError(t, err)
	block, rest := pem.Decode(data)
	require.NotNil(t, block)
	assert.Equal(t, "CERTIFICATE", block.Type)
	assert.Empty(t, bytes.TrimSpace(rest))
	assert.Equal(t, inst.CACert().Raw, block.Bytes)
	assert.Equal(t, string(inst.CACertPEM()), string(data))

	r := decodeResult(t, stdout)
	require.NotNil(t, r.Verified)
	assert.True(t, *r.Verified, "verify error: %s", r.VerifyError)
	assert.True(t, r.Demo)
	assert.True(t, r.SSLEnabled)
	assert.True(t, inst.SSLEnabled(), "the demo turns SSL on")
	assert.Equal(t, out, r.File)
	assert.Equal(t, inst.DomainName(), r.DomainName)
	require.Len(t, r.Certificates, 1)
	assert.Equal(t, inst.CACert().Subject.String(), r.Certificates[0].Subject)
	assert.Equal(t, inst.CACert().Issuer.String(), r.Certificates[0].Issuer)
	_, port, _ := net.SplitHostPort(r.VerifyAddress)
	assert.Equal(t, port, strconv.Itoa(r.Port), "the fake reports the port its TLS listener serves")

	for _, s := range []string{stdout, stderr} {
		assert.NotContains(t, s, "Signature=")
		assert.NotContains(t, s, "AWSAccessKeyId")
	}
	for _, step := range []string{"not a real DCS", "enabling SSL", "waiting for the restart", "downloading the certificate package", "verifying"} {
		assert.Contains(t, stderr, step)
	}
}

func TestDemoThroughRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ca.crt")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-demo", "-out", out}, &stdout, &stderr, os.Getenv)
	require.Equal(t, exitOK, code, "stderr: %s", stderr.String())
	assert.Contains(t, stdout.String(), "wrote "+out+": 1 CA certificate\n")
	assert.Contains(t, stdout.String(), "verified: ")
	assert.Contains(t, stdout.String(), "built-in fake DCS")
	assert.Contains(t, stderr.String(), "built-in fake DCS")
}

func TestNoCredentials(t *testing.T) {
	clearEnv(t)
	out := filepath.Join(t.TempDir(), "ca.crt")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-instance-id", "inst-1", "-out", out}, &stdout, &stderr, os.Getenv)
	assert.Equal(t, exitUsage, code)
	for _, v := range []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID", "HUAWEICLOUD_SDK_REGION", "-demo"} {
		assert.Contains(t, stderr.String(), v)
	}
	assert.Empty(t, stdout.String())
	assert.NoFileExists(t, out)
}

func TestPartialCredentialsNameWhatIsMissing(t *testing.T) {
	clearEnv(t)
	t.Setenv(dcsssl.EnvAccessKey, "AK")
	t.Setenv(dcsssl.EnvSecretKey, "SK")
	t.Setenv(dcsssl.EnvProjectID, "0123456789abcdef")
	code, _, stderr := invoke(t, hooks{newClient: dcsssl.NewClientFromEnv}, "-instance-id", "inst-1")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "HUAWEICLOUD_SDK_REGION not set")
	assert.NotContains(t, stderr, "HUAWEICLOUD_SDK_AK not set")
}

func TestUsageErrors(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	h := realEnv(t, srv)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no instance id", nil, "-instance-id is required"},
		{"unknown flag", []string{"-instance-id", "i", "-bogus"}, "flag provided but not defined"},
		{"bad duration", []string{"-instance-id", "i", "-timeout", "soon"}, "invalid value"},
		{"zero timeout", []string{"-instance-id", "i", "-timeout", "0s"}, "not positive"},
		{"argument", []string{"-instance-id", "i", "extra"}, `unexpected argument "extra"`},
		{"verify without port", []string{"-instance-id", "i", "-verify", "example.com"}, "not host:port"},
		{"empty out", []string{"-instance-id", "i", "-out", ""}, "-out must name a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := invoke(t, h, tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, stderr, tc.want)
			assert.Empty(t, stdout)
		})
	}
	assert.Empty(t, srv.Requests(), "a usage error makes no request")
}

func TestHelp(t *testing.T) {
	code, _, stderr := invoke(t, hooks{}, "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stderr, "-instance-id")
	assert.Contains(t, stderr, "-demo")
}

func TestAPIErrorPrintsRequestID(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	srv.AddInstance("redis5", dcstest.InstanceConfig{Version: "5.0"})
	h := realEnv(t, srv)
	out := filepath.Join(t.TempDir(), "ca.crt")

	code, stdout, stderr := invoke(t, h, "-instance-id", "redis5", "-out", out, "-enable")

	assert.Equal(t, exitFail, code)
	reqs := srv.RequestsFor(dcstest.OpGetSSL)
	require.Len(t, reqs, 1)
	require.NotEmpty(t, reqs[0].RequestID)
	assert.Contains(t, stderr, "400 DCS.4201")
	assert.Contains(t, stderr, "(request id "+reqs[0].RequestID+")")
	assert.Contains(t, stderr, "6.0 and 7.0")
	assert.Empty(t, stdout)
	assert.NoFileExists(t, out)
	assert.Empty(t, srv.RequestsFor(dcstest.OpSetSSL))
	assert.NotContains(t, stderr, srv.Credentials.SecretKey)
}

func TestSSLOffWithoutEnableWarnsAndDownloads(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{Version: "7.0"})
	h := realEnv(t, srv)
	out := filepath.Join(t.TempDir(), "ca.crt")

	code, stdout, stderr := invoke(t, h, "-instance-id", "inst-1", "-out", out, "-json")

	require.Equal(t, exitOK, code, "stderr: %s", stderr)
	assert.Contains(t, stderr, "warning: SSL is off")
	assert.Empty(t, srv.RequestsFor(dcstest.OpSetSSL), "SSL is switched only with -enable")
	assert.False(t, inst.SSLEnabled())
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, string(inst.CACertPEM()), string(data))
	r := decodeResult(t, stdout)
	assert.False(t, r.SSLEnabled)
	assert.False(t, r.Demo)
	assert.Nil(t, r.Verified)
	assert.NotContains(t, stdout+stderr, srv.Credentials.SecretKey)
	assert.NotContains(t, stdout+stderr, "Signature=")
}

func TestRealModeVerifies(t *testing.T) {
	srv := dcstest.NewServer()
	defer srv.Close()
	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stop := serveInstanceTLS(ln, inst)
	defer stop()
	h := realEnv(t, srv)
	out := filepath.Join(t.TempDir(), "ca.crt")

	code, stdout, stderr := invoke(t, h, "-instance-id", "inst-1", "-out", out, "-verify", ln.Addr().String(), "-json")

	require.Equal(t, exitOK, code, "stderr: %s", stderr)
	r := decodeResult(t, stdout)
	require.NotNil(t, r.Verified)
	assert.True(t, *r.Verified)
	assert.False(t, r.Demo)
	assert.Contains(t, []string{"TLS 1.2", "TLS 1.3"}, r.TLSVersion)
}

func TestOutDirMissing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "missing", "ca.crt")
	var inst *dcstest.Instance
	h := hooks{demoStarted: func(i *dcstest.Instance) { inst = i }}

	code, stdout, stderr := invoke(t, h, "-demo", "-out", out)

	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "does not exist")
	assert.Empty(t, stdout)
	assert.Empty(t, dirNames(t, dir))
	require.NotNil(t, inst)
	assert.False(t, inst.SSLEnabled(), "nothing is switched when the file cannot be written")
}

func TestExistingFileUntouchedWhenDownloadFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*dcstest.Server, *dcstest.Instance)
		want  string
	}{
		{"package without certificate", func(_ *dcstest.Server, i *dcstest.Instance) { i.SetPackage([]byte("not a zip")) }, "no CA certificate"},
		{"OBS refuses", func(s *dcstest.Server, _ *dcstest.Instance) {
			s.InjectFault(dcstest.OpOBSDownload, dcstest.Fault{Status: 403,
				Body: "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"})
		}, "AccessDenied"},
		{"DCS fails", func(s *dcstest.Server, _ *dcstest.Instance) {
			s.InjectFault(dcstest.OpDownload, dcstest.Fault{Status: 500,
				Body: `{"error_code":"DCS.5010","error_msg":"Internal error.","error_ext_msg":null}`})
		}, "DCS.5010"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := dcstest.NewServer()
			defer srv.Close()
			inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
			tc.spoil(srv, inst)
			h := realEnv(t, srv)
			dir := t.TempDir()
			out := filepath.Join(dir, "ca.crt")
			old := []byte("the previous CA\n")
			require.NoError(t, os.WriteFile(out, old, 0o600))

			code, stdout, stderr := invoke(t, h, "-instance-id", "inst-1", "-out", out)

			assert.Equal(t, exitFail, code)
			assert.Contains(t, stderr, tc.want)
			assert.Empty(t, stdout)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			assert.Equal(t, old, got)
			fi, err := os.Stat(out)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			assert.Equal(t, []string{"ca.crt"}, dirNames(t, dir))
			assert.NotContains(t, stderr, "Signature=")
		})
	}
}

func TestVerifyAgainstAnotherCA(t *testing.T) {
	// A server certificate for the very name the demo instance has, signed
	// by another CA: only the CA tells them apart.
	other := dcstest.NewServer()
	defer other.Close()
	impostor := other.AddInstance(demoInstanceID, dcstest.InstanceConfig{
		SSLEnabled: true,
		DomainName: "redis-" + demoInstanceID + ".dcs.example.com",
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stop := serveInstanceTLS(ln, impostor)
	defer stop()
	var inst *dcstest.Instance
	h := hooks{demoStarted: func(i *dcstest.Instance) { inst = i }}
	out := filepath.Join(t.TempDir(), "ca.crt")

	code, stdout, stderr := invoke(t, h, "-demo", "-json", "-out", out, "-verify", ln.Addr().String())

	assert.Equal(t, exitFail, code)
	require.NotNil(t, inst)
	require.Equal(t, inst.DomainName(), impostor.DomainName())
	require.NotEqual(t, inst.CACertPEM(), impostor.CACertPEM())
	assert.Contains(t, stderr, "verification of "+ln.Addr().String()+" failed")
	assert.Contains(t, stderr, "unknown authority")
	r := decodeResult(t, stdout)
	require.NotNil(t, r.Verified)
	assert.False(t, *r.Verified)
	assert.Contains(t, r.VerifyError, "unknown authority")
	assert.True(t, r.Demo)
	assert.FileExists(t, out, "the certificates are written before the check")
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, writeFileAtomic(path, []byte("new"), 0o644))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	assert.Equal(t, []string{"ca.crt"}, dirNames(t, dir))

	// A rename that cannot happen (a directory in the way) leaves nothing.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "x"), nil, 0o644))
	assert.Error(t, writeFileAtomic(filepath.Join(dir, "sub"), []byte("new"), 0o644))
	assert.Equal(t, []string{"ca.crt", "sub"}, dirNames(t, dir))
}
