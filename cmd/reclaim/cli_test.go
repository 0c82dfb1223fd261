package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"reclaim/reclaim"
)

func TestParseRunFlagsEnvironment(t *testing.T) {
	t.Setenv("RECLAIM_OUT_DIR", "/from/env")
	t.Setenv("RECLAIM_RATE", "2.5")
	t.Setenv("RECLAIM_DRY_RUN", "true")
	t.Setenv("RECLAIM_TIMEOUT", "45s")
	t.Setenv("RECLAIM_WORKERS", "9")

	f, err := parseRunFlags([]string{"--input", "wave.csv", "--workers", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.OutDir != "/from/env" {
		t.Errorf("out dir = %q, want the RECLAIM_OUT_DIR value", f.cfg.OutDir)
	}
	if f.cfg.Rate != 2.5 || !f.cfg.DryRun || f.cfg.Timeout != 45*time.Second {
		t.Errorf("rate %v, dry run %v, timeout %v; want 2.5, true, 45s from the environment", f.cfg.Rate, f.cfg.DryRun, f.cfg.Timeout)
	}
	if f.cfg.Workers != 2 {
		t.Errorf("workers = %d, want 2: the command line wins over RECLAIM_WORKERS", f.cfg.Workers)
	}
}

func TestParseRunFlagsBadEnvironment(t *testing.T) {
	t.Setenv("RECLAIM_MAX_ATTEMPTS", "many")
	_, err := parseRunFlags([]string{"--input", "wave.csv"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "RECLAIM_MAX_ATTEMPTS") || !strings.Contains(err.Error(), "many") {
		t.Errorf("parseRunFlags error = %v, want one naming RECLAIM_MAX_ATTEMPTS and its value", err)
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{"out-dir": "RECLAIM_OUT_DIR", "rate": "RECLAIM_RATE", "max-attempts": "RECLAIM_MAX_ATTEMPTS"} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestRunHelpListsEveryFlagWithDefault(t *testing.T) {
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"run", "--help"}, &stdout, io.Discard)
	if code != reclaim.ExitOK {
		t.Errorf("run --help exit code = %d, want 0", code)
	}
	help := stdout.String()
	for _, want := range []string{"--input", "--out-dir", "--checkpoint", "--graph-url", "--rate", "--burst", "--workers",
		"--max-attempts", "--timeout", "--notify", "--dry-run", "--deadline", "--restart", "--simulate", "--outage-after",
		"--log-format", "--log-level", "requests per second", "(default 30s)", "(default 5)", "(default 4)", "(default 8)",
		"RECLAIM_OUT_DIR", "Exit codes", "/beta"} {
		if !strings.Contains(help, strings.TrimPrefix(want, "-")) {
			t.Errorf("help does not mention %q:\n%s", want, help)
		}
	}
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantOutput string
	}{
		{[]string{"version"}, reclaim.ExitOK, "reclaim " + version},
		{[]string{"help"}, reclaim.ExitOK, "Exit codes"},
		{nil, reclaim.ExitUsage, "Usage"},
		{[]string{"revoke"}, reclaim.ExitUsage, `unknown command "revoke"`},
		{[]string{"run", "--input"}, reclaim.ExitUsage, "flag needs an argument"},
		{[]string{"run", "--input", "a.csv", "extra"}, reclaim.ExitUsage, `unexpected argument "extra"`},
		{[]string{"run", "--input", "a.csv", "--notify", "false"}, reclaim.ExitUsage, "--notify=false"},
		{[]string{"run", "--input", "a.csv", "--log-level", "trace"}, reclaim.ExitUsage, `--log-level "trace"`},
		{[]string{"run", "--nope"}, reclaim.ExitUsage, "reclaim run --help"},
		{[]string{"run", "--input", "a.csv", "--log-level", "loud"}, reclaim.ExitUsage, `--log-level "loud"`},
		{[]string{"run", "--input", "a.csv", "--log-format", "xml"}, reclaim.ExitUsage, `--log-format "xml"`},
		{[]string{"run", "--input", "a.csv", "--simulate", "--graph-url", "https://graph.microsoft.us/beta"}, reclaim.ExitUsage, "exclude each other"},
		{[]string{"run", "--input", "a.csv", "--graph-url", "http://graph.microsoft.com/beta", "--dry-run"}, reclaim.ExitUsage, "uses http"},
		{[]string{"run", "--input", "a.csv", "--rate", "-1", "--dry-run"}, reclaim.ExitUsage, "--rate -1"},
		{[]string{"run", "--dry-run"}, reclaim.ExitUsage, "--input"},
		{[]string{"run", "--input", "a.csv", "--rate", "NaN", "--dry-run"}, reclaim.ExitUsage, "--rate NaN"},
		{[]string{"run", "--input", "a.csv", "--rate", "0", "--dry-run"}, reclaim.ExitUsage, "--rate 0"},
		{[]string{"run", "--input", "a.csv", "--workers", "0", "--dry-run"}, reclaim.ExitUsage, "--workers 0"},
		{[]string{"run", "--input", "a.csv", "--burst", "0", "--dry-run"}, reclaim.ExitUsage, "--burst 0"},
		{[]string{"run", "--input", "a.csv", "--max-attempts", "0", "--dry-run"}, reclaim.ExitUsage, "--max-attempts 0"},
		{[]string{"run", "--input", "a.csv", "--timeout", "0s", "--dry-run"}, reclaim.ExitUsage, "--timeout 0s"},
		{[]string{"run", "--input", "a.csv", "--outage-after", "0s", "--dry-run"}, reclaim.ExitUsage, "--outage-after 0s"},
		{[]string{"run", "--input", "a.csv", "--deadline", "-1s", "--dry-run"}, reclaim.ExitUsage, "--deadline -1s"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		output := stdout.String() + stderr.String()
		if code != tt.wantCode || !strings.Contains(output, tt.wantOutput) {
			t.Errorf("run(%q) = %d with output %q; want %d with %q", tt.args, code, output, tt.wantCode, tt.wantOutput)
		}
	}
}
