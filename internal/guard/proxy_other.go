//go:build !linux

package guard

func parentOf(int) (int, uint64, error)             { return 0, 0, errLinuxOnly }
func checkProxyProcess(int, uint64) (string, error) { return "", errLinuxOnly }

func noNewPrivs(int) (bool, error) { return false, nil }
