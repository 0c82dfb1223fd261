package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"reclaim/graphclient/graphsim"
)

// secretVariable names the environment variable that holds the client secret. A flag would put
// the secret in the process list and the shell history.
const secretVariable = "GRAPHSIM_CLIENT_SECRET"

// errUsage marks invalid flags, which the flag package has already reported.
var errUsage = errors.New("invalid usage")

// run serves the simulator until ctx is done. getenv reads the environment, stdout receives the
// connection details and stderr the log.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, certOut, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	opts.ClientSecret = getenv(secretVariable)
	if opts.ClientSecret == "" {
		return fmt.Errorf("%s is not set: set it to the client secret that the simulator should accept", secretVariable)
	}

	server, err := graphsim.New(opts)
	if err != nil {
		return err
	}
	defer server.Close()

	if certOut != "" {
		if err := os.WriteFile(certOut, server.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("write certificate: %w", err)
		}
		if certOut, err = filepath.Abs(certOut); err != nil {
			return fmt.Errorf("resolve certificate path: %w", err)
		}
	}
	printConnection(stdout, server, certOut, opts.Open)

	opts.Logger.Info("graphsim started", "url", server.URL(), "write_limit", opts.WriteLimit,
		"write_window", opts.WriteWindow, "read_limit", opts.ReadLimit, "read_window", opts.ReadWindow,
		"license_page_size", opts.LicensePageSize, "retry_after", opts.RetryAfter, "fault_rate", opts.FaultRate,
		"reset_rate", opts.ResetRate, "latency_min", opts.LatencyMin, "latency_max", opts.LatencyMax,
		"process_before_latency", opts.ProcessBeforeLatency, "forms", opts.Forms, "open", opts.Open)
	<-ctx.Done()

	stats := server.Stats()
	opts.Logger.Info("graphsim stopped", "graph_requests", stats.GraphRequests, "read_requests", stats.ReadRequests,
		"tokens_issued", stats.TokensIssued, "throttled", stats.Throttled, "read_throttled", stats.ReadThrottled,
		"license_pages", stats.LicensePages, "licenses_removed", stats.LicensesRemovedTotal)
	return nil
}

// parseFlags returns the Options and the certificate path that args request. Defaults come from
// graphsim.Demo, apart from the limits, which are Intune's for one app: 100 writes and 1000
// requests per 20 s (table "Intune applications service limits" at
// https://learn.microsoft.com/graph/throttling-limits).
func parseFlags(args []string, stderr io.Writer) (graphsim.Options, string, error) {
	opts := graphsim.Demo()
	opts.ClientSecret = ""
	opts.WriteLimit, opts.WriteWindow = 100, 20*time.Second
	opts.ReadLimit, opts.ReadWindow = 1000, 20*time.Second
	opts.LicensePageSize = graphsim.DefaultLicensePageSize

	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s=SECRET graphsim [flags]\n\nServes a fake Microsoft Graph and Entra token endpoint on a loopback address.\n\nFlags:\n", secretVariable)
		fs.PrintDefaults()
	}

	addr := fs.String("addr", "127.0.0.1:8443", "listen `address`, on 127.0.0.1 or localhost only")
	certOut := fs.String("cert-out", "", "write the server certificate in PEM to `file`, for SSL_CERT_FILE")
	fs.StringVar(&opts.TenantID, "tenant-id", opts.TenantID, "tenant `id` that the token endpoint accepts")
	fs.StringVar(&opts.ClientID, "client-id", opts.ClientID, "client `id` that the token endpoint accepts")
	fs.DurationVar(&opts.TokenLifetime, "token-lifetime", graphsim.DefaultTokenLifetime, "how long the server honours an access token")
	fs.DurationVar(&opts.TokenExpiresIn, "token-expires-in", graphsim.DefaultTokenLifetime, "expires_in that token responses advertise")
	fs.IntVar(&opts.WriteLimit, "write-limit", opts.WriteLimit, "writes per client in each write window; 0 turns write throttling off")
	fs.DurationVar(&opts.WriteWindow, "write-window", opts.WriteWindow, "length of the sliding window of writes")
	fs.IntVar(&opts.ReadLimit, "read-limit", opts.ReadLimit, "reads (GET) per client in each read window, counted apart from writes; 0 turns read throttling off")
	fs.DurationVar(&opts.ReadWindow, "read-window", opts.ReadWindow, "length of the sliding window of reads")
	fs.IntVar(&opts.LicensePageSize, "license-page-size", opts.LicensePageSize, "maximum entries per page of assignedLicenses")
	retryAfter := fs.String("retry-after", string(opts.RetryAfter), "Retry-After `style` of 429 responses: seconds, decimal, date, list, none or rotate")
	fs.Float64Var(&opts.FaultRate, "fault-rate", opts.FaultRate, "share of Graph requests, 0 to 1, that get a 500, 502, 503 or 504 response")
	fs.Float64Var(&opts.ResetRate, "reset-rate", opts.ResetRate, "share of Graph requests, 0 to 1, whose connection is dropped")
	fs.DurationVar(&opts.LatencyMin, "latency-min", opts.LatencyMin, "minimum delay before each Graph response")
	fs.DurationVar(&opts.LatencyMax, "latency-max", opts.LatencyMax, "maximum delay before each Graph response")
	fs.BoolVar(&opts.ProcessBeforeLatency, "process-before-latency", false,
		"apply each revoke before the delay instead of after it, so that a client that goes away during the delay, as one killed, still has its revoke take effect")
	forms := fs.String("forms", graphsim.FormBoth.String(), "accepted URL `forms` of revokeDeviceLicense: cast, uncast, both or none")
	fs.BoolVar(&opts.Open, "open", opts.Open,
		"accept every app and device id except those that start with 00000000-; assignedLicenses of such an app is empty, because an open catalogue cannot list its devices")
	fs.BoolVar(&opts.Forbidden, "forbidden", false, "respond with 403 to every read and revoke, as for an app without DeviceManagementApps.ReadWrite.All")
	fs.BoolVar(&opts.FixedSizeStats, "fixed-size-stats", false,
		"keep no per-pair counts and no set of client-request-id values, so that the memory of the stats stays fixed in long runs")
	fs.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of the random source for faults, resets and latency")
	verbose := fs.Bool("v", false, "log every response")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, "", err
		}
		return opts, "", errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "graphsim: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return opts, "", errUsage
	}

	var err error
	opts.Addr = *addr
	if opts.RetryAfter, err = graphsim.ParseRetryAfterStyle(*retryAfter); err != nil {
		fmt.Fprintf(stderr, "graphsim: -retry-after: %v\n", err)
		return opts, "", errUsage
	}
	if opts.Forms, err = graphsim.ParseForm(*forms); err != nil {
		fmt.Fprintf(stderr, "graphsim: -forms: %v\n", err)
		return opts, "", errUsage
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return opts, *certOut, nil
}

// printConnection writes what a client needs to reach the server. It never prints the secret.
// open is Options.Open.
func printConnection(w io.Writer, server *graphsim.Server, certPath string, open bool) {
	fmt.Fprintf(w, "graphsim is serving on %s\n\n", server.URL())
	fmt.Fprintf(w, "Graph URL:       %s\n", server.GraphURL())
	fmt.Fprintf(w, "Authority host:  %s\n", server.AuthorityHost())
	fmt.Fprintf(w, "Token scope:     %s/.default\n", server.URL())
	fmt.Fprintf(w, "Tenant ID:       %s\n", server.TenantID())
	fmt.Fprintf(w, "Client ID:       %s\n", server.ClientID())
	fmt.Fprintf(w, "Stats:           %s%s\n\n", server.URL(), graphsim.StatsPath)

	fmt.Fprintf(w, "Environment for a client:\n")
	fmt.Fprintf(w, "  AZURE_TOKEN_CREDENTIALS=EnvironmentCredential\n")
	fmt.Fprintf(w, "  AZURE_AUTHORITY_HOST=%s\n", server.AuthorityHost())
	fmt.Fprintf(w, "  AZURE_TENANT_ID=%s\n", server.TenantID())
	fmt.Fprintf(w, "  AZURE_CLIENT_ID=%s\n", server.ClientID())
	fmt.Fprintf(w, "  AZURE_CLIENT_SECRET=<the value of %s>\n", secretVariable)
	if certPath != "" {
		fmt.Fprintf(w, "  SSL_CERT_FILE=%s\n", certPath)
	} else {
		fmt.Fprintf(w, "  SSL_CERT_FILE=<a file with the certificate: restart with --cert-out FILE>\n")
	}
	if open {
		// The command lists no devices, so every assignedLicenses listing of the open catalogue is empty
		// and a precheck would find no license to revoke.
		fmt.Fprintf(w, "\nThen: reclaim run --graph-url %s --precheck=false --input FILE\n", server.GraphURL())
		fmt.Fprintf(w, "The open catalogue cannot list license holders, so turn the precheck off against it.\n")
	} else {
		fmt.Fprintf(w, "\nThen: reclaim run --graph-url %s --input FILE\n", server.GraphURL())
	}
	fmt.Fprintf(w, "\nStop with Ctrl-C.\n")
}
