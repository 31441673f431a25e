package clientcmd

import (
	"fmt"
	"strings"
)

// credentialVarSuffixes are the endings of a name that holds a credential.
var credentialVarSuffixes = []string{"_KEY", "_TOKEN", "_SECRET", "_PAT", "_PASSWORD", "_CREDENTIAL", "_CREDENTIALS"}

// loaderVarPrefixes start names that steer how programs load or run
// (LD_PRELOAD, DYLD_INSERT_LIBRARIES, NODE_OPTIONS, PYTHONSTARTUP,
// GIT_SSH_COMMAND, BASH_ENV, GCONV_PATH...) or that are our own. None may
// come from a credential, whatever it ends in. (ENV, PATH, IFS and the like
// fail the suffix rule already.)
var loaderVarPrefixes = []string{
	"LD_", "DYLD_", "GCONV", "LOCPATH", "MALLOC_", "GLIBC_", "NLSPATH",
	"NODE_", "NPM_", "YARN_", "DENO_", "BUN_",
	"PYTHON", "PIP_", "UV_", "CONDA",
	"PERL", "RUBY", "GEM_", "BUNDLE_",
	"JAVA_", "JDK_", "_JAVA", "CLASSPATH", "MAVEN_", "GRADLE_",
	"GIT_", "SSH_", "GPG_", "GNUPG", "KRB5",
	"BASH_", "ZSH", "PROMPT_",
	"CARGO_", "RUSTC", "RUSTUP_", "GOFLAGS", "CGO_",
	"OPENSSL_", "SSL_", "CURL_", "LESS",
	"LLM_", "OPENCODE_", "XDG_", "DBUS_",
}

// checkCredentialVar allows a variable name that credential data chose
// (a wellknown credential's "key") only when it is shaped like a
// credential's variable: upper case, at most 64 bytes, ending in _KEY,
// _TOKEN, _SECRET, _PAT, _PASSWORD or _CREDENTIAL(S), and not starting
// like a variable that changes how programs load or run. An allow-list:
// a planted or hostile agent must not be able to name LD_PRELOAD.
func checkCredentialVar(name string) error {
	why := ""
	switch {
	case name == "":
		why = "it is empty"
	case len(name) > 64:
		why = "it is longer than 64 bytes"
	case !upperVarName(name):
		why = "only A-Z, 0-9 and _ are allowed, starting with a letter"
	case !hasAnySuffix(name, credentialVarSuffixes):
		why = "it does not end in _KEY, _TOKEN, _SECRET, _PAT, _PASSWORD or _CREDENTIAL(S)"
	default:
		for _, p := range loaderVarPrefixes {
			if strings.HasPrefix(name, p) {
				why = "names starting with " + p + " change how programs load or run"
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	if len(name) > 80 {
		name = name[:80] + "..."
	}
	return fmt.Errorf("refusing to set the variable %q from a credential: %s", name, why)
}

func upperVarName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func hasAnySuffix(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}
