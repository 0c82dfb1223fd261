// Command reclaim takes iOS VPP app licenses back from Intune managed devices in bulk, through the
// Microsoft Graph beta action revokeDeviceLicense. Run "reclaim run --help" for its flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the run drains and saves; a second one ends the process at once,
		// which a resume handles like any crash.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
