// Command reclaim-bench measures reclaim against the Graph simulator and writes the figures into a
// generated section of BENCHMARKS.md, each with the command that reproduces it and the machine it
// ran on. "make bench" builds bin/reclaim and runs it; see -help for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "reclaim-bench:", err)
		os.Exit(1)
	}
}

// scenario is one measurement that writes one block of the generated section.
type scenario struct {
	name string
	run  func(ctx context.Context, b *bench) (*block, error)
}

// scenarios lists every scenario in the order they run and appear in BENCHMARKS.md. Alternatives
// reuses the 1x wave of throughput when both run, so throughput comes first.
var scenarios = []scenario{
	{"throughput", runThroughput},
	{"alternatives", runAlternatives},
	{"overhead", runOverhead},
	{"memory", runMemory},
	{"resume", runResume},
	{"quota", runQuota},
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// run parses args, runs the chosen scenarios and writes their blocks. A scenario that fails leaves its
// earlier block in place; run then returns an error after writing the blocks of the others.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reclaim-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "markdown `file` whose generated section to update, such as BENCHMARKS.md; empty prints the section to stdout")
	only := fs.String("only", "", "comma-separated `scenarios` to run (default all): "+strings.Join(scenarioNames(), ","))
	scale := fs.Float64("scale", 1, "`factor` for row counts and fixed run times; 0.01 checks every scenario in seconds")
	binary := fs.String("reclaim", filepath.Join("bin", "reclaim"), "reclaim `binary` to measure, built by make build")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./cmd/reclaim-bench [flags]\n\n"+
			"Runs reclaim against the Graph simulator on 127.0.0.1 and writes the figures between the markers\n"+
			beginMarker+" and "+endMarker+" of -out, appending the markers when the file has none.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: flags take the form -name value", fs.Arg(0))
	}
	if !(*scale > 0 && *scale <= 10) {
		return fmt.Errorf("-scale %g is out of range: give a factor above 0 and at most 10", *scale)
	}
	chosen, err := chooseScenarios(*only)
	if err != nil {
		return err
	}
	reclaimPath, err := filepath.Abs(*binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(reclaimPath); err != nil {
		return fmt.Errorf("reclaim binary not found: %w; run make build first, or give -reclaim", err)
	}
	precheck, err := supportsFlag(reclaimPath, "precheck")
	if err != nil {
		return err
	}

	workDir, err := os.MkdirTemp("", "reclaim-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	b := &bench{
		scale:    *scale,
		reclaim:  reclaimPath,
		binary:   *binary,
		precheck: precheck,
		workDir:  workDir,
		progress: stderr,
		started:  time.Now(),
	}

	blocks := map[string]string{}
	var failed []error
	for _, s := range chosen {
		if ctx.Err() != nil {
			failed = append(failed, fmt.Errorf("%s: not run: %w", s.name, ctx.Err()))
			continue
		}
		b.logf("%s: starting", s.name)
		started := time.Now()
		blk, err := s.run(ctx, b)
		if err != nil {
			b.logf("%s: failed after %s: %v", s.name, since(started), err)
			failed = append(failed, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		blk.name = s.name
		blk.command = b.command(s.name)
		blk.machine = readMachine(time.Now())
		blocks[s.name] = blk.render()
		b.logf("%s: done in %s", s.name, since(started))
	}

	if err := writeBlocks(*out, blocks, stdout); err != nil {
		return err
	}
	if len(blocks) > 0 && *out != "" {
		b.logf("wrote %d scenario(s) into %s", len(blocks), *out)
	}
	b.logf("total %s", since(b.started))
	return errors.Join(failed...)
}

// chooseScenarios returns the scenarios named in the comma-separated list only, in their fixed order,
// or all of them when only is empty.
func chooseScenarios(only string) ([]scenario, error) {
	if strings.TrimSpace(only) == "" {
		return scenarios, nil
	}
	requested := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(scenarioNames(), name) {
			return nil, fmt.Errorf("unknown scenario %q in -only: give some of %s", name, strings.Join(scenarioNames(), ","))
		}
		requested[name] = true
	}
	var chosen []scenario
	for _, s := range scenarios {
		if requested[s.name] {
			chosen = append(chosen, s)
		}
	}
	return chosen, nil
}

// writeBlocks replaces the blocks in the generated section of the file out, or prints the section to
// stdout when out is empty.
func writeBlocks(out string, blocks map[string]string, stdout io.Writer) error {
	if out == "" {
		doc, err := replaceGenerated("", blocks, scenarioNames())
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, doc)
		return err
	}
	old, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc, err := replaceGenerated(string(old), blocks, scenarioNames())
	if err != nil {
		return fmt.Errorf("update %s: %w", out, err)
	}
	return os.WriteFile(out, []byte(doc), 0o644)
}

// bench is the state that the scenarios of one invocation share.
type bench struct {
	// scale multiplies row counts and fixed run times.
	scale float64
	// reclaim is the absolute path of the binary under test, and binary the path as given.
	reclaim string
	binary  string
	// precheck is true when the binary has --precheck, which it then turns on by default.
	precheck bool
	workDir  string
	// progress receives one line per step, for the person waiting.
	progress io.Writer
	started  time.Time

	// wave1x is the reclaim run of the 1x throughput wave, which the alternatives scenario compares
	// with; nil until the throughput scenario has run.
	wave1x *waveResult
	// bigWave is the input of the memory scenario at 1,000,000 rows (times scale). The resume scenario
	// reuses it. It is nil until one of them has written it.
	bigWave *wave
}

// scaled returns n times the scale, at least least.
func (b *bench) scaled(n int, least int) int {
	return max(int(float64(n)*b.scale), least)
}

// scaledDuration returns d times the scale, at least least.
func (b *bench) scaledDuration(d, least time.Duration) time.Duration {
	return max(time.Duration(float64(d)*b.scale), least)
}

// dir returns a new folder under the work folder.
func (b *bench) dir(name string) (string, error) {
	return os.MkdirTemp(b.workDir, name+"-")
}

// logf writes one progress line to stderr, prefixed with the time since the start.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "[%6s] %s\n", since(b.started), fmt.Sprintf(format, args...))
}

// command returns the command that reproduces the figures of scenario name.
func (b *bench) command(name string) string {
	args := []string{"go run ./cmd/reclaim-bench -only " + name}
	if b.scale != 1 {
		args = append(args, fmt.Sprintf("-scale %g", b.scale))
	}
	if filepath.Clean(b.binary) != filepath.Join("bin", "reclaim") {
		args = append(args, "-reclaim "+b.binary)
	}
	args = append(args, "-out BENCHMARKS.md")
	return "make build && " + strings.Join(args, " ")
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}
