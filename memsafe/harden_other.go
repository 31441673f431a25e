//go:build !linux && !darwin

package memsafe

import "errors"

func denyAttach() error { return errors.New("process hardening is not implemented on this system") }
