package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where a figure was measured.
type machine struct {
	cpu   string
	cores int
	// memory is the total RAM in bytes, or 0 when /proc/meminfo cannot be read.
	memory   uint64
	goVer    string
	platform string
	measured time.Time
}

// readMachine describes this machine at the time measured.
func readMachine(measured time.Time) machine {
	m := machine{
		cpu:      "unknown CPU",
		cores:    runtime.NumCPU(),
		goVer:    runtime.Version(),
		platform: runtime.GOOS + "/" + runtime.GOARCH,
		measured: measured.UTC(),
	}
	if model := procField("/proc/cpuinfo", "model name"); model != "" {
		m.cpu = model
	}
	if total := procField("/proc/meminfo", "MemTotal"); total != "" {
		m.memory = parseKiB(total)
	}
	return m
}

// String returns the machine as one line, such as "AMD EPYC 7B13, 2 cores, 23.5 GiB RAM, linux/amd64,
// go1.26.8, measured 2026-12-05 14:03 UTC".
func (m machine) String() string {
	memory := "RAM unknown"
	if m.memory > 0 {
		memory = fmt.Sprintf("%.1f GiB RAM", float64(m.memory)/(1<<30))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s, %s, measured %s", m.cpu, m.cores, memory, m.platform, m.goVer,
		m.measured.Format("2006-01-02 15:04 MST"))
}

// procField returns the value of the first "key: value" line of a /proc file, or "" when the file
// cannot be read or has no such line.
func procField(path, key string) string {
	file, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer file.Close()
	return findField(bufio.NewScanner(file), key)
}

// findField returns the trimmed value of the first line of lines whose name before the colon is key.
func findField(lines *bufio.Scanner, key string) string {
	for lines.Scan() {
		name, value, ok := strings.Cut(lines.Text(), ":")
		if ok && strings.TrimSpace(name) == key {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// parseKiB returns the bytes of a /proc value such as "24567980 kB", or 0 when it has another form.
func parseKiB(value string) uint64 {
	number, ok := strings.CutSuffix(strings.TrimSpace(value), " kB")
	if !ok {
		return 0
	}
	kib, err := strconv.ParseUint(strings.TrimSpace(number), 10, 64)
	if err != nil {
		return 0
	}
	return kib * 1024
}
