// Command download asks for the SSL certificate of one DCS instance and
// prints the answer as JSON. Credentials, project and region come from the
// environment (HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_PROJECT_ID,
// HUAWEICLOUD_SDK_REGION).
//
//	go run ./examples/download -instance-id 6b4f8c1e-...
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dcsssl/dcsssl"
)

func main() {
	instanceID := flag.String("instance-id", "", "the DCS instance ID")
	timeout := flag.Duration("timeout", 30*time.Second, "how long the whole call may take")
	flag.Parse()
	if *instanceID == "" {
		fmt.Fprintln(os.Stderr, "download: -instance-id is required")
		os.Exit(2)
	}

	client, err := dcsssl.NewClientFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cert, err := client.DownloadSSLCert(ctx, *instanceID)
	if err != nil {
		if errors.Is(err, dcsssl.ErrSSLNotSupported) {
			fmt.Fprintln(os.Stderr, "this instance does not support SSL (only DCS Redis 6.0/7.0 basic editions do)")
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	// The link is a bearer secret until it expires: this prints it on
	// purpose, for the caller who asked for it.
	if err := enc.Encode(cert); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
