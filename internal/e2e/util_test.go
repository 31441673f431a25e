package e2e

import (
	"net"
	"time"
)

func dialUnix(path string) (net.Conn, error) {
	return net.DialTimeout("unix", path, time.Second)
}
