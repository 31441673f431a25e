package authfile

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// /proc files are regular but report size 0, which exercises the growing
// read and the cap on bytes read.
func TestReadCappedGrowth(t *testing.T) {
	const p = "/proc/self/status"
	if _, err := os.Stat(p); err != nil {
		t.Skip("no /proc")
	}
	data, err := readCapped(p, MaxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "Name:") {
		t.Errorf("short read: %q", data)
	}
	if _, err := readCapped(p, 16); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 16 bytes") {
		t.Errorf("got %v", err)
	}
}
