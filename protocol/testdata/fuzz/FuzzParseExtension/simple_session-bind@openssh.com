go test fuzz v1
[]byte("\x1b\x00\x00\x00\x18session-bind@openssh.com")
