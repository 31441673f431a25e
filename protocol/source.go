package protocol

import (
	"errors"
	"fmt"
)

// Where a credential's secret comes from, and where rotated tokens go,
// beyond a value given at add time and a laptop file (WriteBack).

// ConstraintCommand says that the credential's secret is the output of a
// command the agent runs on the laptop (add --from-command), when the
// credential is first needed and again when the value's lifetime is over.
const ConstraintCommand = "command@llm-agent"

// ConstraintKeychain asks the agent to write rotated OAuth tokens back to
// the macOS Keychain item the credential was imported from (import
// --keychain --write-back).
const ConstraintKeychain = "keychain-write-back@llm-agent"

// MaxKeychainText bounds a Keychain item's service and account names.
const MaxKeychainText = 255

// KeychainItem names a generic-password item of the login Keychain.
type KeychainItem struct {
	Service string // "Claude Code-credentials", maybe with a suffix
	Account string // the macOS user name
}

// CommandField returns the field that a command credential of the given
// kind fills with the command's output: the key of an api credential, the
// token of a wellknown one; "" for kinds a command cannot fill.
func CommandField(kind string) string {
	switch kind {
	case KindAPI:
		return FieldKey
	case KindWellKnown:
		return FieldToken
	}
	return ""
}

// validateCommand checks an add request whose secret comes from a
// command: an api or wellknown credential without its secret field (the
// command fills it), and no write-back of any kind.
func (r *AddRequest) validateCommand() error {
	if err := checkText([]byte(r.Command), MaxTextLen); err != nil {
		return fmt.Errorf("the command %w", err)
	}
	field := CommandField(r.Kind)
	if field == "" {
		return fmt.Errorf("a command can fill an api or wellknown credential, not %s", r.Kind)
	}
	if r.Value(field) != nil {
		return fmt.Errorf("a credential from a command carries no %q: the command prints it", field)
	}
	if r.WriteBack != nil || r.Keychain != nil {
		return errors.New("a credential from a command has nothing to write back")
	}
	// Validate the rest as if the command's value were there.
	probe := r.Credential
	probe.Fields = append(append([]Field(nil), r.Fields...), Field{Name: field, Value: []byte{'x'}})
	return probe.Validate()
}

func (k *KeychainItem) validate(kind, provider string) error {
	if kind != KindOAuth || provider != "anthropic" {
		return errors.New("the Keychain write-back applies to the anthropic oauth credential (Claude Code's login) only")
	}
	return k.Check()
}

// Check returns an error when the item's service or account is empty,
// longer than MaxKeychainText, or could be read by security -i otherwise
// than meant: the agent writes the item through that tool's command line,
// whose tokenizer reads quotes and backslashes and is byte-based, so only
// printable ASCII without " and \ is accepted.
func (k KeychainItem) Check() error {
	for _, f := range []struct{ name, v string }{{"service", k.Service}, {"account", k.Account}} {
		if f.v == "" {
			return fmt.Errorf("the Keychain item's %s is empty", f.name)
		}
		if len(f.v) > MaxKeychainText {
			return fmt.Errorf("the Keychain item's %s is longer than %d bytes", f.name, MaxKeychainText)
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return fmt.Errorf("the Keychain item's %s holds a character security -i could misread (only printable ASCII without \" and \\ is written)", f.name)
			}
		}
	}
	return nil
}

func (e *encoder) command(cmd string) {
	e.byte1(constrainExtension)
	e.string(ConstraintCommand)
	e.string(cmd)
}

func (e *encoder) keychain(k *KeychainItem) {
	e.byte1(constrainExtension)
	e.string(ConstraintKeychain)
	e.string(k.Service)
	e.string(k.Account)
}

func (d *decoder) keychain() *KeychainItem {
	return &KeychainItem{Service: d.text("keychain service", MaxKeychainText), Account: d.text("keychain account", MaxKeychainText)}
}
