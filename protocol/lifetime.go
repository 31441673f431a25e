package protocol

import (
	"fmt"
	"math"
	"time"
)

// ParseLifetime parses OpenSSH's time format (sshd_config(5) TIME FORMATS):
// a sequence of numbers each with an optional unit s, m, h, d or w (either
// case); a bare number is seconds. "90", "30m", "1h30m". Zero is refused.
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty lifetime")
	}
	var total, n uint64
	digits := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= '0' && ch <= '9' {
			n = n*10 + uint64(ch-'0')
			digits = true
			if n > math.MaxUint32 {
				return 0, fmt.Errorf("lifetime %q is too large", s)
			}
			continue
		}
		if !digits {
			return 0, fmt.Errorf("lifetime %q: want a number before %q (examples: 90, 30m, 8h, 1h30m)", s, ch)
		}
		var unit uint64
		switch ch {
		case 's', 'S':
			unit = 1
		case 'm', 'M':
			unit = 60
		case 'h', 'H':
			unit = 3600
		case 'd', 'D':
			unit = 86400
		case 'w', 'W':
			unit = 7 * 86400
		default:
			return 0, fmt.Errorf("lifetime %q: unknown unit %q (use s, m, h, d or w)", s, ch)
		}
		total += n * unit
		n, digits = 0, false
		if total > math.MaxUint32 {
			return 0, fmt.Errorf("lifetime %q is too large", s)
		}
	}
	total += n
	if total > math.MaxUint32 {
		return 0, fmt.Errorf("lifetime %q is too large", s)
	}
	if total == 0 {
		return 0, fmt.Errorf("lifetime %q is zero", s)
	}
	return time.Duration(total) * time.Second, nil
}
