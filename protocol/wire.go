package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// errShort is returned when a message ends before a field it must hold.
var errShort = errors.New("message truncated")

// decoder reads SSH wire types from a byte slice without copying: strings
// come back as sub-slices of the input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool1() bool {
	v := d.byte1()
	if v > 1 {
		d.fail(fmt.Errorf("boolean field holds %d", v))
	}
	return v == 1
}

func (d *decoder) uint32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.fail(errShort)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// text reads a string that must be printable UTF-8 of at most max bytes;
// names and kinds end up in logs and terminals, so control bytes are refused.
func (d *decoder) text(field string, max int) string {
	b := d.bytes()
	if d.err != nil {
		return ""
	}
	if err := checkText(b, max); err != nil {
		d.fail(fmt.Errorf("%s: %w", field, err))
		return ""
	}
	return string(b)
}

func (d *decoder) empty() bool { return d.err == nil && len(d.b) == 0 }

// finish reports an error when bytes are left over or decoding failed.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d unexpected bytes at end of message", len(d.b))
	}
	return nil
}

// encoder appends SSH wire types to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) byte1(v byte) { e.b = append(e.b, v) }

func (e *encoder) bool1(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) uint32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) uint64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *encoder) bytes(v []byte) {
	e.uint32(uint32(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) string(v string) {
	e.uint32(uint32(len(v)))
	e.b = append(e.b, v...)
}

// checkText accepts non-empty-or-empty printable UTF-8 without control
// characters, up to max bytes.
func checkText(b []byte, max int) error {
	if len(b) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.Valid(b) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range string(b) {
		// C1 controls (U+0080..U+009F) reach terminals and prompts too.
		if unicode.IsControl(r) || r == utf8.RuneError {
			return errors.New("holds a control character")
		}
	}
	return nil
}

// ValidName returns nil when s is acceptable as a provider name: 1 to
// MaxNameLen (64) bytes of ASCII letters, digits and . _ - @ : / (opencode's
// provider ids and more); else an error that says what is wrong.
func ValidName(s string) error {
	if s == "" {
		return errors.New("provider name is empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("provider name is longer than %d bytes", MaxNameLen)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '_', r == '-', r == '@', r == ':', r == '/':
		default:
			return fmt.Errorf("provider name %q holds %q; use letters, digits and . _ - @ : /", s, r)
		}
	}
	return nil
}
