// Command goredis connects to a DCS Redis instance over TLS that verifies
// the instance with the CA of its own SSL certificate package, and sends
// PING. It turns SSL on first when it is off, which restarts the instance.
// Credentials, project and region come from the environment
// (HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_PROJECT_ID,
// HUAWEICLOUD_SDK_REGION); the Redis password, if the instance has one,
// from REDIS_PASSWORD.
//
//	go run . -instance-id 6b4f8c1e-...
//
// From a machine that reaches the instance through another address (a
// tunnel, a forwarded port), -addr dials there while still verifying the
// certificate against the instance's domain name:
//
//	go run . -instance-id 6b4f8c1e-... -addr 127.0.0.1:16379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dcsssl/dcsssl"
)

// EnvRedisPassword names the variable the Redis password is read from.
const EnvRedisPassword = "REDIS_PASSWORD"

func main() {
	instanceID := flag.String("instance-id", "", "the DCS instance ID")
	addr := flag.String("addr", "", "host:port to dial instead of the instance's SSL ip and port")
	// Turning SSL on restarts the instance; that usually takes well under a
	// minute, but the service gives no bound.
	timeout := flag.Duration("timeout", 5*time.Minute, "how long the whole run may take")
	flag.Parse()
	if *instanceID == "" {
		fmt.Fprintln(os.Stderr, "goredis: -instance-id is required")
		os.Exit(2)
	}

	client, err := dcsssl.NewClientFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	if err := run(ctx, client, *instanceID, *addr, os.Stdout); err != nil {
		if errors.Is(err, dcsssl.ErrSSLNotSupported) {
			fmt.Fprintln(os.Stderr, "this instance does not support SSL (only DCS Redis 6.0/7.0 basic editions do)")
		}
		fmt.Fprintln(os.Stderr, "goredis:", err)
		os.Exit(1)
	}
}

// run makes sure SSL is on for the instance, downloads its CA bundle and
// PINGs it with go-redis over TLS verified against that bundle and the
// instance's domain name. It dials addrOverride when it is not empty, and
// the ip:port of the SSL status otherwise. It reports each step to out.
func run(ctx context.Context, client *dcsssl.Client, instanceID, addrOverride string, out io.Writer) error {
	status, err := ensureSSL(ctx, client, instanceID, out)
	if err != nil {
		return err
	}
	if status.DomainName == "" {
		return errors.New("the SSL status has no domain name to verify the instance's certificate against")
	}
	addr := addrOverride
	if addr == "" {
		if status.IP == "" || status.Port == 0 {
			return fmt.Errorf("the SSL status has no address (ip %q, port %d); give one with -addr", status.IP, status.Port)
		}
		addr = net.JoinHostPort(status.IP, strconv.Itoa(status.Port))
	}

	bundle, err := client.DownloadCABundle(ctx, instanceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "CA bundle %s: %d certificate(s), first %q\n",
		bundle.FileName, len(bundle.Certificates), bundle.Certificates[0].Subject.CommonName)

	rdb := redis.NewClient(&redis.Options{
		Addr:      addr,
		Password:  os.Getenv(EnvRedisPassword),
		TLSConfig: bundle.TLSConfig(status.DomainName),
		// Redis 6.0 and 7.0 have no CLIENT MAINT_NOTIFICATIONS; not asking
		// spares a failed step of every connection handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	defer rdb.Close()
	pong, err := rdb.Ping(ctx).Result()
	if err != nil {
		return fmt.Errorf("PING %s over TLS as %s: %w", addr, status.DomainName, err)
	}
	fmt.Fprintf(out, "%s from %s over TLS, verified as %s\n", pong, addr, status.DomainName)
	return nil
}

// ensureSSL returns the instance's SSL status, turning SSL on and waiting
// for the restart to end if it was off.
func ensureSSL(ctx context.Context, client *dcsssl.Client, instanceID string, out io.Writer) (*dcsssl.SSLStatus, error) {
	status, err := client.GetSSLStatus(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	if status.Enabled {
		fmt.Fprintf(out, "SSL is on for %s\n", instanceID)
		return status, nil
	}
	fmt.Fprintf(out, "SSL is off for %s; turning it on (the instance restarts)\n", instanceID)
	job, err := client.SetSSL(ctx, instanceID, true)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "job %s started; waiting for SSL to take effect\n", job.JobID)
	status, err = client.WaitForSSL(ctx, instanceID, true)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "SSL is on for %s\n", instanceID)
	return status, nil
}
