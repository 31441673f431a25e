package guard

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/llm-agent/llm-agent/protocol"
)

// ProveOwner asks the agent behind c for its owner key and checks, by a
// signature over a fresh nonce, that it holds it. A long-running proxy uses
// it to recognise its owner's agent behind a socket it did not start with.
func ProveOwner(c *protocol.Client) (ssh.PublicKey, error) { return proveOwner(c) }

// OwnerID is the owner id of an owner key: the first 16 hex digits of the
// SHA-256 of its wire form; the guard's stable directory is named by it.
func OwnerID(key ssh.PublicKey) string {
	sum := sha256.Sum256(key.Marshal())
	return hex.EncodeToString(sum[:8])
}

// StablePath is the owner's stable guard socket under base.
func StablePath(base, owner string) string { return filepath.Join(OwnerDir(base, owner), "agent.sock") }

// RegisterLogin records the calling process's login session with the agent
// on c, as a guard does when it starts: a guard started later, in another
// login of the owner, then serves this login's processes too (a
// long-running proxy started before any guard). Without audit session ids
// there is nothing to record.
func RegisterLogin(c *protocol.Client) error {
	me, err := readSelf(0)
	if err != nil {
		return err
	}
	if me.sessionID == auditUnset {
		return nil
	}
	_, err = c.Guard(&protocol.GuardRequest{Op: protocol.GuardRegister,
		Session: protocol.Session{BootID: me.bootID, SessionID: me.sessionID}})
	return err
}
