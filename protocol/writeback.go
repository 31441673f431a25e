package protocol

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ConstraintWriteBack asks the agent to write rotated OAuth tokens back to
// the laptop file the credential was imported from (import --write-back).
const ConstraintWriteBack = "write-back@llm-agent"

// WriteBack names that file and its format.
type WriteBack struct {
	Path   string // absolute
	Format string // "opencode", "claude" or "codex"
}

// writeBackFormats maps each format to the provider its OAuth entry has;
// "" means any (opencode's file names its providers).
var writeBackFormats = map[string]string{"opencode": "", "claude": "anthropic", "codex": "openai"}

func (w *WriteBack) validate(kind, provider string) error {
	if kind != KindOAuth {
		return fmt.Errorf("the write-back constraint applies to oauth credentials only, not %s", kind)
	}
	if !filepath.IsAbs(w.Path) || filepath.Clean(w.Path) != w.Path {
		return errors.New("the write-back path must be absolute and clean")
	}
	want, ok := writeBackFormats[w.Format]
	if !ok {
		return fmt.Errorf("unknown write-back format %q (want opencode, claude or codex)", w.Format)
	}
	if want != "" && want != provider {
		return fmt.Errorf("a %s file holds the %s credential, not %s", w.Format, want, provider)
	}
	return nil
}

// Validate checks the credential (Credential.Validate) and the
// constraints that depend on it.
func (r *AddRequest) Validate() error {
	if r.Command != "" {
		return r.validateCommand()
	}
	if err := r.Credential.Validate(); err != nil {
		return err
	}
	if r.WriteBack != nil && r.Keychain != nil {
		return errors.New("rotated tokens go back to a file or to the Keychain, not both")
	}
	if r.WriteBack != nil {
		return r.WriteBack.validate(r.Kind, r.Provider)
	}
	if r.Keychain != nil {
		return r.Keychain.validate(r.Kind, r.Provider)
	}
	return nil
}

func (e *encoder) writeBack(w *WriteBack) {
	e.byte1(constrainExtension)
	e.string(ConstraintWriteBack)
	e.string(w.Path)
	e.string(w.Format)
}

func (d *decoder) writeBack() *WriteBack {
	return &WriteBack{Path: d.text("write-back path", MaxTextLen), Format: d.text("write-back format", MaxNameLen)}
}
