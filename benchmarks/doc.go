// Package benchmarks measures dcsssl's DownloadSSLCert against the official
// Huawei Cloud Go SDK (services/dcs/v2 DcsClient.DownloadSslCert) and
// against "the floor": plain net/http plus the official signer, which is
// the least any client built on that signer does.
//
// It is its own module so that the official DCS service client stays out
// of dcsssl's module graph. All three clients run in one process, on the
// same transport and the same answer:
//
//   - canned: an http.RoundTripper that returns the fixed 200 answer (a
//     fresh body each call), so only client-side cost is timed;
//   - loopback-tls: an httptest TLS server with keep-alive;
//   - concurrent: 32 goroutines sharing one client against the TLS
//     server, reporting calls/s;
//   - cold start: constructing a client and making its first call.
//
// Every client gets the same http.Client settings: the given transport and
// no client timeout (the official SDK's 120-second default is turned off,
// which can only make it faster).
//
// To print the Markdown table of medians and ratios:
//
//	cd benchmarks && go run ./cmd/benchtable -count 6
package benchmarks
