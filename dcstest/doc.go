// Package dcstest is an in-process fake of the DCS SSL APIs and of the OBS
// bucket their download links point to, for tests of package dcsssl and of
// the programs that use it. It is modelled on net/http/httptest:
//
//	srv := dcstest.NewServer()
//	defer srv.Close()
//	inst := srv.AddInstance("inst-1", dcstest.InstanceConfig{Version: "6.0", SSLEnabled: true})
//	client, err := dcsssl.NewClient(srv.ProjectID, srv.Credentials,
//		dcsssl.WithEndpoint(srv.URL), dcsssl.WithHTTPClient(srv.Client()))
//
// The fake behaves like the service rather than answering canned 200s:
//
//   - Every API request is verified the way the API gateway verifies it,
//     before any DCS logic: the SDK-HMAC-SHA256 signature (recomputed here,
//     independently of the official SDK), a known access key, an X-Sdk-Date
//     within 15 minutes of the server's clock, X-Project-Id matching the
//     project in the path, and X-Security-Token for temporary credentials.
//     A refusal is a 401 APIGW.0301 answer; an access key that fails five
//     times in a row is locked for five minutes, as the gateway does.
//   - Errors have the service's shapes: DCS errors
//     {"error_code","error_msg","error_ext_msg":null}, gateway errors
//     {"error_code","error_msg","request_id"}, OBS errors in XML. Every
//     answer carries an X-Request-Id header.
//   - The download API hands out a presigned link on the same server (SSL
//     on or off); the link serves a zip holding ca.crt and README.txt,
//     expires, refuses tampering, and needs no Authorization header.
//   - Switching SSL returns a job and restarts the instance: the change
//     takes effect after a delay during which the status query fails.
//   - Each instance has its own CA and a server certificate signed by it,
//     usable to run a real TLS server (or redis-server) in a test.
//
// Faults (statuses, bodies, delays, dropped connections) can be injected per
// operation with Server.InjectFault; every request is recorded
// (Server.Requests) and new connections are counted
// (Server.ConnectionCount). NewMetadataServer adds a fake of the ECS
// metadata service that issues expiring temporary credentials this Server
// accepts.
//
// All time decisions use the clock given by WithClock (real time by
// default); ManualClock is a clock tests can move.
//
// A Server and everything it returns are safe for concurrent use.
package dcstest
