//go:build !unix

package authfile

import "errors"

// LockSuffix names the lock file that WriteBack takes beside the file.
const LockSuffix = ".lock"

// WriteBack is not supported here: it needs flock and POSIX renames.
func WriteBack(path string, format Format, provider string, u Update) error {
	return errors.New("writing credential files back is not supported on this system")
}
