package protocol_test

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llm-agent/llm-agent/protocol"
)

func TestParseLifetime(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Duration
		errHas string
	}{
		{"90", 90 * time.Second, ""},
		{"30m", 30 * time.Minute, ""},
		{"8h", 8 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1w", 7 * 24 * time.Hour, ""},
		{"2d", 48 * time.Hour, ""},
		{"10s", 10 * time.Second, ""},
		{"1H1M1S", time.Hour + time.Minute + time.Second, ""},
		{"1m30", 90 * time.Second, ""}, // a bare number at the end is seconds
		{"0s1", time.Second, ""},
		{"007", 7 * time.Second, ""},
		{"4294967295", math.MaxUint32 * time.Second, ""},
		{"0", 0, "zero"},
		{"0m0s", 0, "zero"},
		{"", 0, "empty"},
		{"m", 0, "want a number"},
		{"5x", 0, "unknown unit"},
		{"1h 30m", 0, "want a number"},
		{"30 m", 0, "unknown unit"},
		{"-5", 0, "want a number"},
		{"1hh", 0, "want a number"},
		{"4294967296", 0, "too large"},
		{"99999999999999999999999", 0, "too large"},
		{"4294967295s1", 0, "too large"},
		{"7102w", 0, "too large"},
		{"49711d", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := protocol.ParseLifetime(tt.in)
		if tt.errHas == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseLifetime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseLifetime(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.errHas)
		}
	}
}

// lifetimeRef is an independent reading of sshd_config(5)'s TIME FORMATS,
// for the fuzz target to compare against: seconds, or ok=false.
var lifetimeToken = regexp.MustCompile(`^([0-9]+[sSmMhHdDwW]?)+$`)
var lifetimePart = regexp.MustCompile(`([0-9]+)([sSmMhHdDwW]?)`)

func lifetimeRef(s string) (uint64, bool) {
	if !lifetimeToken.MatchString(s) {
		return 0, false
	}
	units := map[string]int64{"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
	total := new(big.Int)
	for _, m := range lifetimePart.FindAllStringSubmatch(s, -1) {
		n, _ := new(big.Int).SetString(m[1], 10)
		total.Add(total, n.Mul(n, big.NewInt(units[strings.ToLower(m[2])])))
	}
	if total.Sign() == 0 || total.Cmp(big.NewInt(math.MaxUint32)) > 0 {
		return 0, false
	}
	return total.Uint64(), true
}

func TestLifetimeRef(t *testing.T) {
	for _, s := range []string{"90", "1h30m", "1m30", "0", "4294967296", "x"} {
		want, ok := lifetimeRef(s)
		got, err := protocol.ParseLifetime(s)
		if ok != (err == nil) || (ok && got != time.Duration(want)*time.Second) {
			t.Errorf("%q: ParseLifetime %v, %v; reference %d, %v", s, got, err, want, ok)
		}
	}
}
