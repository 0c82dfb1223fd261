package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestFindField(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	tests := []struct {
		key  string
		want string
	}{
		{"model name", "AMD EPYC 7B13"},
		{"vendor_id", "AuthenticAMD"},
		{"model", ""},
		{"flags", ""},
	}
	for _, tt := range tests {
		if got := findField(bufio.NewScanner(strings.NewReader(cpuinfo)), tt.key); got != tt.want {
			t.Errorf("findField(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestParseKiB(t *testing.T) {
	tests := []struct {
		value string
		want  uint64
	}{
		{"24567980 kB", 24567980 * 1024},
		{"   26112 kB", 26112 * 1024},
		{"26112", 0},
		{"many kB", 0},
	}
	for _, tt := range tests {
		if got := parseKiB(tt.value); got != tt.want {
			t.Errorf("parseKiB(%q) = %d, want %d", tt.value, got, tt.want)
		}
	}
}
