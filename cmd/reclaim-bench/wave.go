package main

import (
	"bufio"
	cryptorand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"

	"reclaim/graphclient/graphsim"
)

// waveApps is the number of mobile apps that a wave's rows are spread over, in turn.
const waveApps = 3

// wave is a generated input: rows of distinct (app, device) pairs over waveApps apps, of which the rows
// that licensed selects hold a license in the simulator. The same seed gives the same wave.
type wave struct {
	seed uint64
	rows int
	// licensed reports whether row i (from 0) holds a license.
	licensed func(i int) bool
	// path is the CSV file, with the header appId,deviceId; empty until written.
	path string
}

// pair is one row of a wave.
type pair struct {
	app, device string
}

// eachPair calls fn for every row of the wave, in order.
func (w *wave) eachPair(fn func(i int, p pair)) {
	r := rand.New(rand.NewPCG(w.seed, w.seed^0x5eed))
	apps := make([]string, waveApps)
	for i := range apps {
		apps[i] = newGUID(r)
	}
	for i := range w.rows {
		fn(i, pair{app: apps[i%len(apps)], device: newGUID(r)})
	}
}

// pairs returns every row of the wave. Use it only for waves that fit in memory with ease.
func (w *wave) pairs() []pair {
	all := make([]pair, 0, w.rows)
	w.eachPair(func(_ int, p pair) { all = append(all, p) })
	return all
}

// licensedCount returns the number of rows that hold a license.
func (w *wave) licensedCount() int {
	n := 0
	for i := range w.rows {
		if w.licensed(i) {
			n++
		}
	}
	return n
}

// write writes the wave as CSV into path and records the path.
func (w *wave) write(path string) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(file, 1<<20)
	out.WriteString("appId,deviceId\n")
	w.eachPair(func(_ int, p pair) {
		out.WriteString(p.app)
		out.WriteByte(',')
		out.WriteString(p.device)
		out.WriteByte('\n')
	})
	if err := out.Flush(); err != nil {
		file.Close()
		return fmt.Errorf("write wave %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return err
	}
	w.path = path
	return nil
}

// catalogue returns the simulator's apps for the wave: every app is an iosVppApp, and the devices of
// the licensed rows hold a license for their row's app.
func (w *wave) catalogue() map[string]graphsim.App {
	apps := map[string]graphsim.App{}
	w.eachPair(func(i int, p pair) {
		app := apps[p.app]
		app.VPP = true
		if w.licensed(i) {
			app.Licensed = append(app.Licensed, p.device)
		}
		apps[p.app] = app
	})
	return apps
}

// everyRow licenses every row.
func everyRow(int) bool { return true }

// everyNth returns a selection of rows 0, n, 2n and so on.
func everyNth(n int) func(int) bool {
	return func(i int) bool { return i%n == 0 }
}

// newGUID returns a version 4 GUID drawn from r, in lowercase.
func newGUID(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return formatGUID(b)
}

// randomGUID returns a version 4 GUID from crypto/rand, as graphclient makes a client-request-id.
func randomGUID() string {
	var b [16]byte
	cryptorand.Read(b[:])
	return formatGUID(b)
}

// formatGUID returns b as a version 4 GUID in the 8-4-4-4-12 form, in lowercase.
func formatGUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80

	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
