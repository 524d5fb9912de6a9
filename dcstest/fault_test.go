package dcstest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dcsssl/dcsssl"
	"github.com/dcsssl/dcsssl/dcstest"
)

// TestFaultStatusBodyTimes checks that a fault answers its status and body
// to the next Times requests of its operation only, and is recorded.
func TestFaultStatusBodyTimes(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{
		Times:  2,
		Status: http.StatusServiceUnavailable,
		Body:   `{"error_code":"DCS.5001","error_msg":"busy","error_ext_msg":null}`,
	})

	_, err := c.DownloadSSLCert(ctx, "inst-1")
	require.NoError(t, err, "another operation is not hit")
	for i := 0; i < 2; i++ {
		_, err := c.GetSSLStatus(ctx, "inst-1")
		var de *dcsssl.DCSError
		require.True(t, errors.As(err, &de), "%v", err)
		assert.Equal(t, http.StatusServiceUnavailable, de.StatusCode)
		assert.Equal(t, "DCS.5001", de.ErrorCode)
		assert.Equal(t, "busy", de.ErrorMsg)
		assert.Regexp(t, `^[0-9a-f]{32}$`, de.RequestID, "a fault's answer still has a request ID")
	}
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err, "the fault is used up")

	recs := s.RequestsFor(dcstest.OpGetSSL)
	require.Len(t, recs, 3)
	assert.Equal(t, []int{503, 503, 200}, []int{recs[0].Status, recs[1].Status, recs[2].Status})
	assert.Equal(t, []bool{true, true, false}, []bool{recs[0].Fault, recs[1].Fault, recs[2].Fault})
	assert.Equal(t, []int{2, 3, 4}, []int{recs[0].Seq, recs[1].Seq, recs[2].Seq})

	a := do(t, s, signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now()))
	assert.Equal(t, http.StatusOK, a.Status)
}

// TestFaultEveryTimeAndRetries checks Times 0 (every request) and that the
// client's retries show in the records, in order.
func TestFaultEveryTimeAndRetries(t *testing.T) {
	s, _ := setup(t)
	c := newClient(t, s, s.Credentials, dcsssl.WithRetry(dcsssl.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	s.InjectFault(dcstest.OpDownload, dcstest.Fault{Status: http.StatusBadGateway, Body: "<html>bad gateway</html>"})
	_, err := c.DownloadSSLCert(context.Background(), "inst-1")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusBadGateway, de.StatusCode)
	assert.Contains(t, de.ErrorMsg, "bad gateway")

	recs := s.Requests()
	require.Len(t, recs, 3)
	for i, r := range recs {
		assert.Equal(t, i+1, r.Seq)
		assert.Equal(t, http.StatusBadGateway, r.Status)
		assert.True(t, r.Fault)
		assert.False(t, r.Time.Before(recs[0].Time))
	}

	s.ClearFaults()
	_, err = c.DownloadSSLCert(context.Background(), "inst-1")
	require.NoError(t, err)
}

// TestFaultHeader checks Header: Retry-After on a fault's answer, a header
// added to the service's own answer, a header removed.
func TestFaultHeader(t *testing.T) {
	s, _ := setup(t)
	s.InjectFault(dcstest.OpSetSSL, dcstest.Fault{
		Times:  1,
		Status: http.StatusTooManyRequests,
		Body:   `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}`,
		Header: http.Header{"Retry-After": {"7"}},
	})
	a := do(t, s, signedRequest(t, s, "PUT", sslPath(s, "inst-1"), `{"enabled":false}`, s.Credentials, time.Now()))
	assert.Equal(t, http.StatusTooManyRequests, a.Status)
	assert.Equal(t, "7", a.Header.Get("Retry-After"))
	assert.Equal(t, "application/json;charset=UTF-8", a.Header.Get("Content-Type"))
	assert.Equal(t, "APIGW.0308", a.JSON(t)["error_code"])
	assert.True(t, s.Instance("inst-1").SSLEnabled(), "a throttled switch changes nothing")

	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Header: http.Header{"X-Request-Id": nil, "X-Extra": {"1"}}})
	a = do(t, s, signedRequest(t, s, "GET", sslPath(s, "inst-1"), "", s.Credentials, time.Now()))
	assert.Equal(t, http.StatusOK, a.Status)
	assert.Equal(t, "1", a.Header.Get("X-Extra"))
	assert.Empty(t, a.Header.Values("X-Request-Id"))
	assert.Equal(t, true, a.JSON(t)["enabled"])
}

// TestFaultDelay checks Delay: the answer comes late, and a client that
// gives up first gets its deadline while the server records no answer.
func TestFaultDelay(t *testing.T) {
	s, c := setup(t)
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Delay: 200 * time.Millisecond})
	start := time.Now()
	st, err := c.GetSSLStatus(context.Background(), "inst-1")
	require.NoError(t, err)
	assert.True(t, st.Enabled)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.GetSSLStatus(ctx, "inst-1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	require.Eventually(t, func() bool {
		recs := s.RequestsFor(dcstest.OpGetSSL)
		return len(recs) == 2 && recs[1].Done
	}, 5*time.Second, 10*time.Millisecond, "the delay must end when the client goes away")
	recs := s.RequestsFor(dcstest.OpGetSSL)
	assert.Equal(t, 0, recs[1].Status)
	assert.True(t, recs[1].Fault)
}

// TestFaultDelayEndsOnClose checks that Close does not wait out a delay.
func TestFaultDelayEndsOnClose(t *testing.T) {
	s := dcstest.NewServer()
	s.AddInstance("inst-1", dcstest.InstanceConfig{SSLEnabled: true})
	c := newClient(t, s, s.Credentials)
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Delay: time.Minute})
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetSSLStatus(context.Background(), "inst-1")
		errc <- err
	}()
	require.Eventually(t, func() bool { return len(s.Requests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	start := time.Now()
	s.Close()
	assert.Less(t, time.Since(start), 5*time.Second)
	select {
	case err := <-errc:
		assert.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not end after Close")
	}
}

// TestFaultDropConnection checks DropConnection: the client gets no answer
// at all, and the next request needs a new connection.
func TestFaultDropConnection(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, DropConnection: true})
	_, err := c.GetSSLStatus(ctx, "inst-1")
	require.Error(t, err)
	var de *dcsssl.DCSError
	assert.False(t, errors.As(err, &de), "no answer, not an error answer: %v", err)

	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	recs := s.RequestsFor(dcstest.OpGetSSL)
	require.Len(t, recs, 2)
	assert.True(t, recs[0].Dropped)
	assert.True(t, recs[0].Fault)
	assert.Equal(t, 0, recs[0].Status)
	assert.False(t, recs[1].Dropped)
	assert.Equal(t, 2, s.ConnectionCount(), "the dropped connection is replaced")
	assert.NotEqual(t, recs[0].RemoteAddr, recs[1].RemoteAddr)
}

// TestFaultDropReusedConnection shows what net/http does with a GET whose
// reused connection closes before any answer: it sends it again on a new
// connection by itself, so the caller sees one success and the records two
// requests.
func TestFaultDropReusedConnection(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	_, err := c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, DropConnection: true})
	_, err = c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	recs := s.RequestsFor(dcstest.OpGetSSL)
	require.Len(t, recs, 3)
	assert.Equal(t, []bool{false, true, false}, []bool{recs[0].Dropped, recs[1].Dropped, recs[2].Dropped})
	assert.Equal(t, 2, s.ConnectionCount())
}

// TestFaultOnLink checks faults on the download link.
func TestFaultOnLink(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	s.InjectFault(dcstest.OpOBSDownload, dcstest.Fault{Times: 1, Status: http.StatusServiceUnavailable,
		Body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>"})
	cert, err := c.DownloadSSLCert(ctx, "inst-1")
	require.NoError(t, err)
	_, err = c.FetchCABundle(ctx, cert)
	var oe *dcsssl.OBSError
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Equal(t, http.StatusServiceUnavailable, oe.StatusCode)
	assert.Equal(t, "ServiceUnavailable", oe.Code)
	_, err = c.FetchCABundle(ctx, cert)
	require.NoError(t, err)
}

// TestFaultBeforeAuth checks where faults apply: by default only to
// requests that pass verification; with BeforeAuth, to any.
func TestFaultBeforeAuth(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	bad := newClient(t, s, dcsssl.Credentials{AccessKey: s.Credentials.AccessKey, SecretKey: "wrong"})

	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Status: http.StatusTeapot})
	_, err := bad.GetSSLStatus(ctx, "inst-1")
	assert.ErrorIs(t, err, dcsssl.ErrUnauthorized, "verification comes first")
	_, err = c.GetSSLStatus(ctx, "inst-1")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusTeapot, de.StatusCode, "the fault waited for a verified request")

	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Status: http.StatusTeapot, BeforeAuth: true})
	_, err = bad.GetSSLStatus(ctx, "inst-1")
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, http.StatusTeapot, de.StatusCode)
	recs := s.Requests()
	assert.Empty(t, recs[len(recs)-1].Refusal, "not verified at all")
}

// TestFaultInstance checks that a fault for one instance leaves the others
// alone.
func TestFaultInstance(t *testing.T) {
	s, c := setup(t)
	s.AddInstance("inst-2", dcstest.InstanceConfig{})
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Instance: "inst-2", Status: http.StatusInternalServerError,
		Body: `{"error_code":"DCS.5010","error_msg":"Failed to operate SSL in database.","error_ext_msg":null}`})
	ctx := context.Background()
	_, err := c.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	_, err = c.GetSSLStatus(ctx, "inst-2")
	var de *dcsssl.DCSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Equal(t, "DCS.5010", de.ErrorCode)
}

// TestFaultRate checks Rate: about that share of requests is hit, and the
// same seed hits the same requests.
func TestFaultRate(t *testing.T) {
	pattern := func(seed uint64) []bool {
		s, c := setup(t, dcstest.WithSeed(seed))
		s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Rate: 0.1, Status: http.StatusServiceUnavailable})
		var hits []bool
		for i := 0; i < 300; i++ {
			_, err := c.GetSSLStatus(context.Background(), "inst-1")
			hits = append(hits, err != nil)
		}
		return hits
	}
	count := func(b []bool) (n int) {
		for _, v := range b {
			if v {
				n++
			}
		}
		return n
	}
	a, b, other := pattern(42), pattern(42), pattern(7)
	assert.InDelta(t, 30, count(a), 18, "about 10%% of 300")
	assert.Equal(t, a, b, "same seed, same requests hit")
	assert.NotEqual(t, a, other)
}

// TestFaultRateWithTimes checks that only hit requests count toward Times.
func TestFaultRateWithTimes(t *testing.T) {
	s, c := setup(t)
	s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Rate: 0.5, Times: 3, Status: http.StatusServiceUnavailable})
	failed := 0
	for i := 0; i < 100; i++ {
		if _, err := c.GetSSLStatus(context.Background(), "inst-1"); err != nil {
			failed++
		}
	}
	assert.Equal(t, 3, failed)
}

// TestConnectionCount checks that the count shows connection reuse, and
// that ResetRecords starts it and the records afresh.
func TestConnectionCount(t *testing.T) {
	s, c := setup(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		_, err := c.GetSSLStatus(ctx, "inst-1")
		require.NoError(t, err)
	}
	assert.Equal(t, 1, s.ConnectionCount(), "sequential calls reuse one connection")
	assert.Len(t, s.Requests(), 5)

	s.ResetRecords()
	assert.Equal(t, 0, s.ConnectionCount())
	assert.Empty(t, s.Requests())

	other := &http.Client{Transport: s.Client().Transport.(*http.Transport).Clone()}
	c2 := newClient(t, s, s.Credentials, dcsssl.WithHTTPClient(other))
	_, err := c2.GetSSLStatus(ctx, "inst-1")
	require.NoError(t, err)
	other.CloseIdleConnections()
	assert.Equal(t, 1, s.ConnectionCount())
	recs := s.Requests()
	require.Len(t, recs, 1)
	assert.Equal(t, 1, recs[0].Seq)
}

// TestConcurrentUse runs clients, fault injection and record reading at
// once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	s, c := setup(t)
	for i := 0; i < 4; i++ {
		s.AddInstance(fmt.Sprintf("inst-c%d", i), dcstest.InstanceConfig{SSLEnabled: i%2 == 0})
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			id := fmt.Sprintf("inst-c%d", g%4)
			for i := 0; i < 10; i++ {
				switch i % 3 {
				case 0:
					_, _ = c.GetSSLStatus(ctx, id)
				case 1:
					_, _ = c.SetSSL(ctx, id, i%2 == 0)
				case 2:
					_, _ = c.DownloadCABundle(ctx, id)
				}
				s.InjectFault(dcstest.OpGetSSL, dcstest.Fault{Times: 1, Rate: 0.5, Status: 503})
				_ = s.Requests()
				_ = s.Instance(id).SSLEnabled()
				_ = s.ConnectionCount()
			}
		}(g)
	}
	wg.Wait()
	assert.GreaterOrEqual(t, len(s.Requests()), 80)
}
