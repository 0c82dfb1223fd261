package graphclient

import (
	"strconv"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"0.249", 249 * time.Millisecond, true},
		{"2.128", 2128 * time.Millisecond, true},
		{"0.0004", minRetryAfter, true},
		{"0", minRetryAfter, true},
		{"2, 3", 3 * time.Second, true},
		{"3,2", 3 * time.Second, true},
		{"x, 4", 4 * time.Second, true},
		{"Fri, 04 Dec 2026 10:00:05 GMT", 5 * time.Second, true},
		{"Friday, 04-Dec-26 10:00:09 GMT", 9 * time.Second, true},
		{"Fri, 04 Dec 2026 09:59:00 GMT", minRetryAfter, true},
		{"Sat, 05 Dec 2026 10:00:00 GMT", MaxRetryAfter, true},
		{"100000", MaxRetryAfter, true},
		{"1e300", MaxRetryAfter, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{",", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.value, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseRetryAfterDecimalNeverShorter(t *testing.T) {
	for _, value := range []string{"0.001", "0.2491", "0.9999", "1.0001", "19.9995"} {
		seconds, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseRetryAfter(value, time.Now())
		if !ok || got.Seconds() < seconds {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want at least %gs", value, got, ok, seconds)
		}
	}
}
