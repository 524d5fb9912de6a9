package dcstest

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// InstanceConfig describes an instance for AddInstance. Its zero value is a
// Redis 6.0 instance with SSL off.
type InstanceConfig struct {
	// Version is the Redis version: "6.0" and "7.0" support SSL; any other
	// ("5.0", "4.0", ...) answers DCS.4201 "Do not support SSL." to all
	// three SSL APIs. The default is "6.0".
	Version string
	// SSLEnabled is the initial SSL state.
	SSLEnabled bool
	// DomainName is the instance's TLS name, in its server certificate and
	// the status query; the default is "redis-{id}.dcs.example.com".
	DomainName string
	// IP is the address the status query reports; the default is
	// "127.0.0.1".
	IP string
	// Port is the port the status query reports (as a string, as the
	// service does); the default is 6379.
	Port int
	// CertNotAfter is when the server certificate expires, reported as
	// ssl_expired_at; the default is a year after AddInstance. Certificates
	// are valid from an hour before AddInstance by the real clock, which is
	// what TLS stacks check them against.
	CertNotAfter time.Time
}

// Instance is a DCS instance of a Server, with its own CA and a server
// certificate signed by that CA.
type Instance struct {
	id      string
	version string
	domain  string
	ip      string
	port    int
	now     func() time.Time // the server's clock

	caCert  *x509.Certificate
	caPEM   []byte
	cert    tls.Certificate
	certPEM []byte
	keyPEM  []byte

	mu      sync.Mutex
	enabled bool
	pending *pendingSwitch
	pkg     []byte // the package served; nil: built from bundle
	bundle  []byte // the ca.crt served
}

// pendingSwitch is an SSL switch whose restart has not ended.
type pendingSwitch struct {
	enabled bool
	at      time.Time // when it takes effect
	job     string
}

// AddInstance adds (or replaces) the instance id and generates its CA and
// server certificate. It panics on an empty id.
func (s *Server) AddInstance(id string, cfg InstanceConfig) *Instance {
	if id == "" {
		panic("dcstest: AddInstance with an empty instance ID")
	}
	inst := newInstance(id, cfg)
	inst.now = s.now
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id] = inst
	return inst
}

// Instance returns the instance id, or nil.
func (s *Server) Instance(id string) *Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instances[id]
}

// RemoveInstance removes the instance id: the API answers DCS.4010 for it
// and its links answer NoSuchKey.
func (s *Server) RemoveInstance(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.instances, id)
}

func newInstance(id string, cfg InstanceConfig) *Instance {
	inst := &Instance{
		id:      id,
		version: cfg.Version,
		domain:  cfg.DomainName,
		ip:      cfg.IP,
		port:    cfg.Port,
		enabled: cfg.SSLEnabled,
	}
	if inst.version == "" {
		inst.version = "6.0"
	}
	if inst.domain == "" {
		inst.domain = "redis-" + strings.ToLower(id) + ".dcs.example.com"
	}
	if inst.ip == "" {
		inst.ip = "127.0.0.1"
	}
	if inst.port == 0 {
		inst.port = 6379
	}
	notBefore := time.Now().Add(-time.Hour)
	notAfter := cfg.CertNotAfter
	if notAfter.IsZero() {
		notAfter = time.Now().AddDate(1, 0, 0)
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{Organization: []string{"dcstest"}, CommonName: "DCS test CA " + id},
		NotBefore:             notBefore,
		NotAfter:              notAfter.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	inst.caCert = createCert(caTmpl, caTmpl, caKey, caKey)
	inst.caPEM = pemCert(inst.caCert)
	inst.bundle = inst.caPEM

	key := newKey()
	leaf := createCert(&x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{Organization: []string{"dcstest"}, CommonName: inst.domain},
		DNSNames:     []string{inst.domain},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, inst.caCert, key, caKey)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	inst.certPEM = pemCert(leaf)
	inst.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	inst.cert = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return inst
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	return k
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}

func createCert(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic("dcstest: " + err.Error())
	}
	return c
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// ID returns the instance ID.
func (i *Instance) ID() string { return i.id }

// Version returns the Redis version the instance was added with.
func (i *Instance) Version() string { return i.version }

// DomainName returns the instance's TLS name.
func (i *Instance) DomainName() string { return i.domain }

// CACertPEM returns the PEM of the instance's CA, the one that signs
// ServerCertificate: what the download's ca.crt holds unless SetCABundle or
// SetPackage replaced it.
func (i *Instance) CACertPEM() []byte { return append([]byte(nil), i.caPEM...) }

// CACert returns the instance's CA certificate.
func (i *Instance) CACert() *x509.Certificate { return i.caCert }

// CertPool returns a pool holding only the instance's CA.
func (i *Instance) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(i.caCert)
	return p
}

// ServerCertificate returns the instance's server certificate, for
// DomainName, 127.0.0.1 and ::1, signed by its CA, with Leaf set: serve it
// with tls.Config.Certificates to stand in for the instance.
func (i *Instance) ServerCertificate() tls.Certificate { return i.cert }

// ServerCertPEM returns the PEM of the server certificate, for
// redis-server --tls-cert-file.
func (i *Instance) ServerCertPEM() []byte { return append([]byte(nil), i.certPEM...) }

// ServerKeyPEM returns the PEM of the server certificate's private key, for
// redis-server --tls-key-file.
func (i *Instance) ServerKeyPEM() []byte { return append([]byte(nil), i.keyPEM...) }

// SSLEnabled reports the SSL state in effect now, by the server's clock:
// during the restart after a switch, still the old state.
func (i *Instance) SSLEnabled() bool {
	enabled, _ := i.state(i.now())
	return enabled
}

// Restarting reports whether the instance is restarting after an SSL
// switch, by the server's clock.
func (i *Instance) Restarting() bool {
	_, restarting := i.state(i.now())
	return restarting
}

// SetSSLEnabled sets the SSL state at once, without a restart, ending any
// restart under way.
func (i *Instance) SetSSLEnabled(enabled bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.enabled, i.pending = enabled, nil
}

// SetPackage makes the download link serve body as it is, whatever it
// holds (a zip bomb, garbage, a package without ca.crt). nil restores the
// package built from the CA bundle.
func (i *Instance) SetPackage(body []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.pkg = append([]byte(nil), body...)
	if body == nil {
		i.pkg = nil
	}
}

// SetCABundle makes the package's ca.crt hold pemBytes instead of the
// instance's CA (another CA, several, a non-CA certificate). nil restores
// the instance's CA.
func (i *Instance) SetCABundle(pemBytes []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.bundle = append([]byte(nil), pemBytes...)
	if pemBytes == nil {
		i.bundle = i.caPEM
	}
}

// Package returns the bytes the download link serves now.
func (i *Instance) Package() []byte {
	i.mu.Lock()
	pkg, bundle := i.pkg, i.bundle
	i.mu.Unlock()
	if pkg != nil {
		return append([]byte(nil), pkg...)
	}
	return buildPackage(i.id, bundle)
}

// buildPackage zips ca.crt and a README, as the service's package does.
func buildPackage(id string, caPEM []byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := []struct {
		name string
		body []byte
	}{
		{"ca.crt", caPEM},
		{"README.txt", []byte("SSL certificate of DCS instance " + id + ".\n" +
			"Connect with: redis-cli --tls --cacert ca.crt -h <domain name> -p <port>\n")},
	}
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err == nil {
			_, err = w.Write(f.body)
		}
		if err != nil {
			panic("dcstest: " + err.Error())
		}
	}
	if err := zw.Close(); err != nil {
		panic("dcstest: " + err.Error())
	}
	return buf.Bytes()
}

func (i *Instance) fileName() string { return "ssl-" + i.id + ".zip" }

func (i *Instance) supportsSSL() bool { return i.version == "6.0" || i.version == "7.0" }

// state returns the SSL state at now, ending a restart whose time has
// come.
func (i *Instance) state(now time.Time) (enabled, restarting bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.pending != nil && !now.Before(i.pending.at) {
		i.enabled, i.pending = i.pending.enabled, nil
	}
	return i.enabled, i.pending != nil
}

// switchSSL starts a switch that takes effect at at and returns its job
// ID. A switch during a restart replaces the pending one.
func (i *Instance) switchSSL(enabled bool, at time.Time) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	job := newJobID()
	i.pending = &pendingSwitch{enabled: enabled, at: at, job: job}
	return job
}

// newJobID returns a random UUID, the form of DCS job IDs.
func newJobID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
