//go:build !unix

package authfile

const openFlags = 0
