package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// newEd25519 returns a fresh ed25519 key as an OpenSSH private key file
// (unencrypted) and its public half. The private bytes must only ever be
// written to 0600 files, never logged.
func newEd25519(comment string) (privPEM []byte, pub ssh.PublicKey, err error) {
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(edPriv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ed25519 private key: %w", err)
	}
	pub, err = ssh.NewPublicKey(edPub)
	if err != nil {
		return nil, nil, fmt.Errorf("convert ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(block), pub, nil
}

// randHex returns 2n random lowercase hex digits, for unique names.
func randHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}
