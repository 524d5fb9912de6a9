// Package dcsssl is a client for the SSL APIs of Huawei Cloud DCS
// (Distributed Cache Service) Redis instances that goes from an instance ID
// to a verified TLS connection.
//
// A Client signs each request with the official SDK's AK/SK signer
// (SDK-HMAC-SHA256) and calls:
//
//   - DownloadSSLCert: POST /v2/{project_id}/instances/{instance_id}/ssl-certs/download,
//     the presigned link of the instance's certificate package;
//   - GetSSLStatus, SetSSL and WaitForSSL: whether SSL is on, switching it
//     (the instance restarts), and waiting until the switch took effect;
//   - FetchCABundle and DownloadCABundle: fetching the package, unpacking
//     the CA certificates (ca.crt), and CABundle.TLSConfig, a *tls.Config
//     that trusts exactly them, for go-redis or any TLS client.
//
// Every call takes a context.Context, which is its only deadline. Answers
// are read with size limits; non-2xx answers are *DCSError values, which
// errors.As reaches, with sentinels such as ErrSSLNotSupported for
// errors.Is. Calls are retried by a RetryPolicy that never retries what
// could lock an access key (401/403) or repeat an instance restart.
// Credentials come from a CredentialsProvider (static, the environment, the
// ECS metadata service, or your own) and are refreshed once for all callers
// before they expire.
//
// A Client is safe for concurrent use. Package dcstest is an in-process fake
// of the service for tests.
package dcsssl
